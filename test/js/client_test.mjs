// client_test.mjs — the official ollama JavaScript client (npm "ollama")
// against a cllama server: chat, generate, embed, list, show, ps, copy,
// delete. Usage: node client_test.mjs http://127.0.0.1:PORT MODEL
import { Ollama } from 'ollama';
import assert from 'node:assert/strict';

const [host, model] = process.argv.slice(2);
const ollama = new Ollama({ host });

const chat = await ollama.chat({ model, messages: [{ role: 'user', content: 'Once upon a time' }],
  options: { temperature: 0, num_predict: 16 } });
assert.equal(chat.done, true);
assert.equal(chat.message.role, 'assistant');
assert.ok(chat.message.content.length > 0);

let streamed = '';
for await (const part of await ollama.chat({ model, stream: true,
  messages: [{ role: 'user', content: 'Once upon a time' }], options: { temperature: 0, num_predict: 16 } })) {
  streamed += part.message.content;
}
assert.equal(streamed, chat.message.content);

const gen = await ollama.generate({ model, prompt: 'Once upon a time', options: { temperature: 0, num_predict: 8 } });
assert.equal(gen.done, true);
assert.ok(gen.response.length > 0);
assert.ok(gen.eval_count > 0 && gen.prompt_eval_count > 0);

const emb = await ollama.embed({ model, input: ['hello', 'world'] });
assert.equal(emb.embeddings.length, 2);
const norm = Math.sqrt(emb.embeddings[0].reduce((s, x) => s + x * x, 0));
assert.ok(Math.abs(norm - 1) < 1e-4);

const list = await ollama.list();
assert.ok(list.models.some((m) => m.name.startsWith(model)));

const show = await ollama.show({ model });
assert.ok(show.model_info && show.details && show.capabilities && show.modified_at);

const ps = await ollama.ps();
assert.ok(ps.models.length >= 1);
assert.ok('expires_at' in ps.models[0] && 'size_vram' in ps.models[0]);

assert.equal((await ollama.copy({ source: model, destination: 'jscopy' })).status, 'success');
assert.equal((await ollama.delete({ model: 'jscopy' })).status, 'success');
await assert.rejects(ollama.show({ model: 'jscopy' }), (e) => e.status_code === 404);

console.log('ollama-js: ok');
