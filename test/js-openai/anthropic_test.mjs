// anthropic_test.mjs — the official Anthropic JavaScript client (npm
// "@anthropic-ai/sdk") against cllama's /v1/messages: a message, a streamed
// message with the SDK's event accumulation, and a 404 error.
// Usage: node anthropic_test.mjs http://127.0.0.1:PORT MODEL
import Anthropic from '@anthropic-ai/sdk';
import assert from 'node:assert/strict';

const [host, model] = process.argv.slice(2);
const client = new Anthropic({ baseURL: host, apiKey: 'ollama', maxRetries: 0 });
const messages = [{ role: 'user', content: 'Once upon a time' }];

const msg = await client.messages.create({ model, max_tokens: 16, temperature: 0, messages });
assert.equal(msg.type, 'message');
assert.equal(msg.role, 'assistant');
assert.equal(msg.content[0].type, 'text');
assert.ok(msg.content[0].text.length > 0);
assert.equal(msg.stop_reason, 'max_tokens');
assert.equal(msg.usage.output_tokens, 16);

const stream = client.messages.stream({ model, max_tokens: 16, temperature: 0, messages });
let streamed = '';
stream.on('text', (t) => { streamed += t; });
const final = await stream.finalMessage();
assert.equal(streamed, msg.content[0].text);
assert.equal(final.content[0].text, msg.content[0].text);
assert.equal(final.stop_reason, 'max_tokens');
assert.equal(final.usage.output_tokens, 16);

await assert.rejects(client.messages.create({ model: 'missing', max_tokens: 8, messages }),
  (e) => e.status === 404 && /not found/.test(e.message));

console.log('anthropic-js: ok');
