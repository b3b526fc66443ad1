// client_test.mjs — the official OpenAI JavaScript client (npm "openai")
// against cllama's /v1 endpoints: chat completions (JSON and streamed, with
// usage), legacy completions, embeddings, models, and a 404 error.
// Usage: node client_test.mjs http://127.0.0.1:PORT MODEL
import OpenAI from 'openai';
import assert from 'node:assert/strict';

const [host, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${host}/v1`, apiKey: 'ollama', maxRetries: 0 });
const messages = [{ role: 'user', content: 'Once upon a time' }];

const chat = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 16 });
assert.equal(chat.object, 'chat.completion');
assert.equal(chat.choices[0].message.role, 'assistant');
assert.ok(chat.choices[0].message.content.length > 0);
assert.equal(chat.choices[0].finish_reason, 'length');
assert.equal(chat.usage.completion_tokens, 16);
assert.equal(chat.usage.total_tokens, chat.usage.prompt_tokens + 16);

let streamed = '';
let usage = null;
const stream = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 16,
  stream: true, stream_options: { include_usage: true } });
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) streamed += c.delta.content ?? '';
}
assert.equal(streamed, chat.choices[0].message.content);
assert.deepEqual(usage, chat.usage);

const cmpl = await client.completions.create({ model, prompt: 'Once upon a time', temperature: 0, max_tokens: 8 });
assert.equal(cmpl.object, 'text_completion');
assert.ok(cmpl.choices[0].text.length > 0);

const emb = await client.embeddings.create({ model, input: ['hello', 'world'] });
assert.equal(emb.data.length, 2);
assert.equal(emb.data[1].index, 1);
assert.equal(emb.data[0].embedding.length, 64);

const list = await client.models.list();
assert.ok(list.data.some((m) => m.id.startsWith(model)));
const one = await client.models.retrieve(model);
assert.equal(one.id, model);

await assert.rejects(client.chat.completions.create({ model: 'missing', messages }),
  (e) => e.status === 404 && /model 'missing' not found/.test(e.message));

console.log('openai-js: ok');
