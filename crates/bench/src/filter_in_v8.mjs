// `tollgate-bench vm`: runs a proxy-wasm module's request callbacks in Node's V8 with TurboFan
// only (as Envoy's V8 runs modules), against a host written here that answers what Envoy would
// and counts every call. What it measures is the module's own work per request, without Envoy
// and without the noise of a loaded machine; `tollgate-bench envoy` measures the real thing.
//
// Argument: one JSON object {wasm, config, token, resolve (hex of a ResolveResponse, empty for
// a module that never asks), path, iterations, rounds}. Prints one JSON line:
// {ns: [per round, ns per request], calls: {host call: count per request}}.
import fs from 'node:fs';

const spec = JSON.parse(process.argv[2]);
const HEADERS = [
  [':authority', '127.0.0.1:10000'], [':path', spec.path], [':method', 'GET'], [':scheme', 'http'],
  ['authorization', `Bearer ${spec.token}`], ['user-agent', 'wrk'], ['x-forwarded-proto', 'http'],
  ['x-request-id', '0b7c8b4e-7d2f-4a43-9d5e-2c1f7b0e9a11'],
];
const STATUS = { ok: 0, notFound: 1 };
const NOW_NS = BigInt(Date.now()) * 1000000n;

let exports_;
const bytes = () => new Uint8Array(exports_.memory.buffer);
const view = () => new DataView(exports_.memory.buffer);
const text = (ptr, len) => Buffer.from(exports_.memory.buffer, ptr, len).toString();
// Hands bytes to the module as Envoy does: in memory the module allocates.
const give = (data, ptrPtr, sizePtr) => {
  const ptr = exports_.proxy_on_memory_allocate(data.length);
  bytes().set(data, ptr);
  view().setUint32(ptrPtr, ptr, true);
  view().setUint32(sizePtr, data.length, true);
  return STATUS.ok;
};
// proxy-wasm's map encoding: count, (key length, value length) pairs, then each key and value
// followed by a NUL.
const encodeMap = (pairs) => {
  const encoded = pairs.map(([k, v]) => [Buffer.from(k), Buffer.from(v)]);
  let size = 4 + 8 * encoded.length;
  for (const [k, v] of encoded) size += k.length + v.length + 2;
  const out = Buffer.alloc(size);
  let at = out.writeUInt32LE(encoded.length, 0);
  for (const [k, v] of encoded) { at = out.writeUInt32LE(k.length, at); at = out.writeUInt32LE(v.length, at); }
  for (const [k, v] of encoded) { at += k.copy(out, at) + 1; at += v.copy(out, at) + 1; }
  return out;
};
const requestHeaders = encodeMap(HEADERS);
const responseHeaders = encodeMap([[':status', '200'], ['content-type', 'text/plain']]);
const resolve = Buffer.from(spec.resolve, 'hex');

const calls = {};
const count = (name) => { calls[name] = (calls[name] ?? 0) + 1; };
let grpcAnswer = null;
let grpcCall = 0;
let nextToken = 1;
const failures = [];

const env = {
  proxy_log: (level, ptr, len) => { if (level >= 3) failures.push(`log ${level}: ${text(ptr, len)}`); return STATUS.ok; },
  proxy_set_tick_period_milliseconds: () => STATUS.ok,
  proxy_get_buffer_bytes: (type, _start, _max, ptrPtr, sizePtr) => {
    count('get_buffer');
    if (type === 7) return give(Buffer.from(spec.config), ptrPtr, sizePtr); // plugin configuration
    if (type === 5 && grpcAnswer) return give(grpcAnswer, ptrPtr, sizePtr); // gRPC receive buffer
    return STATUS.notFound;
  },
  proxy_get_current_time_nanoseconds: (ptr) => { count('get_current_time'); view().setBigUint64(ptr, NOW_NS, true); return STATUS.ok; },
  proxy_get_header_map_pairs: (type, ptrPtr, sizePtr) => { count('get_header_map'); return give(type === 0 ? requestHeaders : responseHeaders, ptrPtr, sizePtr); },
  proxy_get_header_map_value: (type, keyPtr, keyLen, ptrPtr, sizePtr) => {
    count('get_header');
    const key = text(keyPtr, keyLen);
    const found = HEADERS.find(([name]) => name === key);
    return found ? give(Buffer.from(found[1]), ptrPtr, sizePtr) : STATUS.notFound;
  },
  proxy_replace_header_map_value: () => { count('set_header'); return STATUS.ok; },
  proxy_add_header_map_value: () => { count('add_header'); return STATUS.ok; },
  proxy_remove_header_map_value: () => { count('remove_header'); return STATUS.ok; },
  proxy_set_header_map_pairs: () => { count('set_header_map'); return STATUS.ok; },
  proxy_define_metric: (_type, _ptr, _len, idPtr) => { view().setUint32(idPtr, 1, true); return STATUS.ok; },
  proxy_increment_metric: () => { count('increment_metric'); return STATUS.ok; },
  proxy_record_metric: () => { count('record_metric'); return STATUS.ok; },
  proxy_grpc_call: (...args) => { count('grpc_call'); grpcCall = nextToken++; view().setUint32(args[args.length - 1], grpcCall, true); return STATUS.ok; },
  proxy_grpc_stream: (...args) => { count('grpc_stream'); view().setUint32(args[args.length - 1], nextToken++, true); return STATUS.ok; },
  proxy_continue_stream: () => { count('continue'); return STATUS.ok; },
  proxy_send_local_response: (status) => { count('local_response'); failures.push(`local response ${status}`); return STATUS.ok; },
};
const module = new WebAssembly.Module(fs.readFileSync(spec.wasm));
for (const { module: from, name } of WebAssembly.Module.imports(module)) {
  if (from === 'env' && !env[name]) env[name] = () => { count(name); return STATUS.ok; };
}
const wasi = {
  random_get: (ptr, len) => { count('wasi_random_get'); bytes().set(crypto.getRandomValues(new Uint8Array(len)), ptr); return 0; },
  environ_get: () => 0,
  environ_sizes_get: (countPtr, sizePtr) => { view().setUint32(countPtr, 0, true); view().setUint32(sizePtr, 0, true); return 0; },
  clock_time_get: (_id, _precision, ptr) => { count('wasi_clock_time_get'); view().setBigUint64(ptr, NOW_NS, true); return 0; },
  fd_write: () => { count('wasi_fd_write'); return 0; },
  proc_exit: (code) => { throw new Error(`proc_exit ${code}`); },
};
exports_ = new WebAssembly.Instance(module, { env, wasi_snapshot_preview1: wasi }).exports;
const x = exports_;
const ROOT = 1;
x._initialize?.();
x.proxy_on_context_create(ROOT, 0);
x.proxy_on_vm_start(ROOT, 0);
if (!x.proxy_on_configure(ROOT, spec.config.length)) throw new Error(`configuration refused: ${failures.join('; ')}`);

// One request as Envoy drives it: create, headers, the answer's headers, done, log, delete.
const request = (id) => {
  x.proxy_on_context_create(id, ROOT);
  const action = x.proxy_on_request_headers(id, HEADERS.length, 1);
  x.proxy_on_response_headers(id, 2, 1);
  x.proxy_on_done(id);
  x.proxy_on_log(id);
  x.proxy_on_delete(id);
  return action;
};
// The first request misses the cache: the module asks the server, which grants.
let id = 2;
x.proxy_on_context_create(id, ROOT);
if (x.proxy_on_request_headers(id, HEADERS.length, 1) === 1 && grpcCall) {
  grpcAnswer = resolve;
  x.proxy_on_grpc_receive(ROOT, grpcCall, resolve.length);
  grpcAnswer = null;
}
x.proxy_on_done(id); x.proxy_on_log(id); x.proxy_on_delete(id);
if (failures.length) throw new Error(failures.join('; '));
for (const name of Object.keys(calls)) delete calls[name];
if (request(++id) !== 0) throw new Error(`a cached token must continue: ${failures.join('; ')}`);
const perRequest = { ...calls };
for (let i = 0; i < spec.iterations / 4; i++) request(++id); // warm caches and the allocator
const ns = [];
for (let round = 0; round < spec.rounds; round++) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < spec.iterations; i++) request(++id);
  ns.push(Number(process.hrtime.bigint() - start) / spec.iterations);
}
if (failures.length) throw new Error(failures.join('; '));
console.log(JSON.stringify({ ns, calls: perRequest }));
