// agents_test.mjs — the official OpenAI JavaScript client (npm "openai"),
// unchanged, with what agents use: tools with tool_choice, response_format
// json_schema, and the Responses API (responses.create, streamed and not).
// The well-formedness of calls and objects comes from the server's grammar.
// Usage: node agents_test.mjs http://127.0.0.1:PORT MODEL
import OpenAI from 'openai';
import assert from 'node:assert/strict';

const [host, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${host}/v1`, apiKey: 'ollama', maxRetries: 0 });
const schema = {
  type: 'object',
  properties: { city: { type: 'string', enum: ['Paris', 'Rome'] },
    days: { type: 'integer', minimum: 1, maximum: 7 } },
  required: ['city', 'days'], additionalProperties: false,
};
function valid(o) {
  assert.deepEqual(Object.keys(o).sort(), ['city', 'days']);
  assert.ok(o.city === 'Paris' || o.city === 'Rome', JSON.stringify(o));
  assert.ok(Number.isInteger(o.days) && o.days >= 1 && o.days <= 7, JSON.stringify(o));
}
const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather',
  parameters: schema } }];
const messages = [{ role: 'user', content: 'Weather in Paris?' }];

// Chat completions with tools.
for (const tool_choice of ['required', { type: 'function', function: { name: 'get_weather' } }]) {
  const r = await client.chat.completions.create({ model, messages, tools, tool_choice, max_tokens: 300 });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  const tc = r.choices[0].message.tool_calls[0];
  assert.equal(tc.function.name, 'get_weather');
  valid(JSON.parse(tc.function.arguments));
  // The result goes back by tool_call_id.
  const next = await client.chat.completions.create({ model, max_tokens: 8, messages: [...messages,
    r.choices[0].message, { role: 'tool', tool_call_id: tc.id, content: 'sunny' }] });
  assert.equal(next.object, 'chat.completion');
}
// Streamed: the SDK's runner gathers the tool-call deltas.
const stream = client.chat.completions.stream({ model, messages, tools, tool_choice: 'required',
  max_tokens: 300 });
const final = await stream.finalChatCompletion();
valid(JSON.parse(final.choices[0].message.tool_calls[0].function.arguments));
console.log('openai tools: ok');

// response_format json_schema.
for (let i = 0; i < 3; i++) {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 300,
    response_format: { type: 'json_schema', json_schema: { name: 'weather', schema, strict: true } } });
  valid(JSON.parse(r.choices[0].message.content));
}
console.log('openai response_format: ok');

// Responses API.
const resp = await client.responses.create({ model, input: 'Once upon a time', max_output_tokens: 12 });
assert.equal(resp.status, 'completed');
assert.ok(resp.output_text.length > 0);
let streamed = '';
let completed = null;
const rs = await client.responses.create({ model, input: 'Once upon a time', max_output_tokens: 12,
  stream: true });
for await (const ev of rs) {
  if (ev.type === 'response.output_text.delta') streamed += ev.delta;
  if (ev.type === 'response.completed') completed = ev.response;
}
assert.ok(completed);
assert.equal(streamed, completed.output.find((o) => o.type === 'message').content[0].text);
const withTool = await client.responses.create({ model, input: 'Weather in Paris?', max_output_tokens: 300,
  tools: [{ type: 'function', name: 'get_weather', parameters: schema, strict: true }],
  tool_choice: 'required' });
const fc = withTool.output.find((o) => o.type === 'function_call');
assert.ok(fc, JSON.stringify(withTool.output));
valid(JSON.parse(fc.arguments));
const structured = await client.responses.create({ model, input: 'Weather?', max_output_tokens: 300,
  text: { format: { type: 'json_schema', name: 'weather', schema, strict: true } } });
valid(JSON.parse(structured.output_text));
console.log('openai responses: ok');
