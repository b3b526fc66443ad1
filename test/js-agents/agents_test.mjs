// agents_test.mjs — LangChain (@langchain/ollama) and the Vercel AI SDK (ai
// with ollama-ai-provider-v2), unchanged, against cllama's native API:
// structured output and tools. The test model has random-ish weights, so the
// well-formedness of objects and calls comes from the server's grammar
// (format, tool_choice), which is what is being tested.
// Usage: node agents_test.mjs http://127.0.0.1:PORT MODEL
import { ChatOllama } from '@langchain/ollama';
import { tool } from '@langchain/core/tools';
import { AIMessage, HumanMessage, ToolMessage } from '@langchain/core/messages';
import { generateObject, generateText, tool as aiTool } from 'ai';
import { createOllama } from 'ollama-ai-provider-v2';
import { z } from 'zod';
import assert from 'node:assert/strict';

const [host, model] = process.argv.slice(2);
const Weather = z.object({
  city: z.enum(['Paris', 'Rome']),
  days: z.number().int().min(1).max(7),
});

// LangChain: withStructuredOutput sends the schema as `format`.
const llm = new ChatOllama({ baseUrl: host, model, numPredict: 300 });
for (let i = 0; i < 3; i++) {
  const out = await llm.withStructuredOutput(Weather).invoke('Weather in Paris?');
  Weather.parse(out);
}
console.log('langchain withStructuredOutput: ok');

// LangChain: bindTools renders the tool; a call and its result go back into
// the prompt. (ChatOllama sends no tool_choice, so whether the model calls
// is up to it; any call it makes must be well-formed.)
const getWeather = tool(async ({ city }) => `sunny in ${city}`, {
  name: 'get_weather', description: 'The weather in a city', schema: Weather,
});
const withTools = llm.bindTools([getWeather]);
const ai = await withTools.invoke('Weather in Paris?');
assert.ok(ai instanceof AIMessage);
for (const tc of ai.tool_calls ?? []) {
  assert.equal(tc.name, 'get_weather');
  Weather.parse(tc.args);
}
const call = new AIMessage({ content: '', tool_calls: [{ id: 'call_1', name: 'get_weather',
  args: { city: 'Paris', days: 2 } }] });
const after = await withTools.invoke([new HumanMessage('Weather in Paris?'), call,
  new ToolMessage({ tool_call_id: 'call_1', content: 'sunny' })]);
assert.equal(typeof after.content, 'string');
console.log('langchain bindTools: ok');

// AI SDK: generateObject (format) and tools with toolChoice (grammar).
const ollama = createOllama({ baseURL: `${host}/api` });
for (let i = 0; i < 3; i++) {
  const { object } = await generateObject({ model: ollama(model), schema: Weather,
    prompt: 'Weather in Paris?', maxOutputTokens: 300 });
  Weather.parse(object);
}
console.log('ai generateObject: ok');
const weatherTool = aiTool({ description: 'The weather in a city', inputSchema: Weather,
  execute: async ({ city, days }) => `sunny in ${city} for ${days} days` });
for (const toolChoice of ['required', { type: 'tool', toolName: 'get_weather' }]) {
  const r = await generateText({ model: ollama(model), prompt: 'Weather in Paris?',
    tools: { get_weather: weatherTool }, toolChoice, maxOutputTokens: 300 });
  assert.equal(r.toolCalls.length, 1, JSON.stringify(r.toolCalls));
  assert.equal(r.toolCalls[0].toolName, 'get_weather');
  Weather.parse(r.toolCalls[0].input);
  assert.match(String(r.toolResults[0].output), /^sunny in (Paris|Rome)/);
}
console.log('ai tools: ok');
