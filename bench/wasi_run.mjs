// Runs a wasm32-wasip1 program under Node.js (V8, the engine of Chromium) with its
// arguments: `node bench/wasi_run.mjs PROGRAM.wasm [ARGS...]` (see core/examples/train_steps.rs).
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env, exit } from "node:process";

const [program, ...args] = argv.slice(2);
const wasi = new WASI({ version: "preview1", args: [program, ...args], env, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(program));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
