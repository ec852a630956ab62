// npm run build: the one command that makes web/dist from the sources.
//   1. vite build (TypeScript, CodeMirror, CSS) into dist/
//   2. GOOS=js GOARCH=wasm go build ./web/wasm into dist/palimpsest.wasm, and
//      wasm_exec.js from the Go toolchain ($(go env GOROOT)/lib/wasm)
//   3. dist/sw.js with the list of files to precache
//   4. dist/manifest.json: the hash of the sources (go run ./web/cmd/srchash),
//      which web's Go test compares to catch a stale dist, and every file's sha256
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, copyFileSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'

const web = join(dirname(fileURLToPath(import.meta.url)), '..')
const root = join(web, '..')
const dist = join(web, 'dist')
const env = { ...process.env, GOTOOLCHAIN: 'local' }
const run = (cmd, args, opts = {}) => String(execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], env, ...opts }) ?? '').trim()

run(join(web, 'node_modules/.bin/tsc'), ['--noEmit', '-p', web], { stdio: 'inherit' })
run(join(web, 'node_modules/.bin/vite'), ['build', '--logLevel', 'warn'], { cwd: web, stdio: 'inherit' })

run('go', ['build', '-trimpath', '-ldflags=-s -w -buildid=', '-o', join(dist, 'palimpsest.wasm'), './web/wasm'],
  { cwd: root, env: { ...env, GOOS: 'js', GOARCH: 'wasm', CGO_ENABLED: '0' } })
const goroot = run('go', ['env', 'GOROOT'])
copyFileSync(join(goroot, 'lib/wasm/wasm_exec.js'), join(dist, 'wasm_exec.js'))
chmodSync(join(dist, 'palimpsest.wasm'), 0o644)
chmodSync(join(dist, 'wasm_exec.js'), 0o644)
const goVersion = run('go', ['env', 'GOVERSION'])

const sources = run('go', ['run', './web/cmd/srchash'], { cwd: root })

function walk(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? walk(p) : [p]
  })
}
const precache = ['/', ...walk(dist).map((p) => '/' + relative(dist, p)).filter((p) => p !== '/index.html' && p !== '/sw.js' && p !== '/manifest.json')].sort()
const sw = readFileSync(join(web, 'src/sw.js'), 'utf8')
  .replace('__VERSION__', sources.slice(0, 16))
  .replace('__PRECACHE__', JSON.stringify(precache, null, 1))
writeFileSync(join(dist, 'sw.js'), sw)

const files = {}
for (const p of walk(dist).sort()) {
  const rel = relative(dist, p)
  if (rel === 'manifest.json') continue
  files[rel] = createHash('sha256').update(readFileSync(p)).digest('hex')
}
const wasm = readFileSync(join(dist, 'palimpsest.wasm'))
const manifest = {
  comment: 'Written by npm run build (web/scripts/build.mjs); web/dist_test.go checks sources against the tree.',
  sources,
  go: goVersion,
  wasm: { bytes: wasm.length, gzip_bytes: gzipSync(wasm, { level: 9 }).length },
  files,
}
writeFileSync(join(dist, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n')
console.log(`web/dist built: sources ${sources.slice(0, 12)}, palimpsest.wasm ${wasm.length} bytes (${manifest.wasm.gzip_bytes} gzip), ${Object.keys(files).length} files`)
