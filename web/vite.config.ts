import { defineConfig } from 'vite'

// The editor is one page; scripts/build.mjs runs this build, then adds the
// WebAssembly core, wasm_exec.js, the service worker and the manifest.
export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
})
