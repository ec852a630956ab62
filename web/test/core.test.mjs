// Unit tests of the WebAssembly core's JavaScript binding (web/wasm/main.go),
// in Node: node --test test/ (run by web/unit_test.go in go test ./...).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist')
await import(join(dist, 'wasm_exec.js'))
const go = new globalThis.Go()
const ready = new Promise((resolve) => { globalThis.palimpsestCoreReady = resolve })
const { instance } = await WebAssembly.instantiate(readFileSync(join(dist, 'palimpsest.wasm')), go.importObject)
go.run(instance)
const core = await ready

test('two replicas converge through encoded ops', () => {
  const a = core.newDoc(1)
  const b = core.newDoc(2)
  const op1 = a.insert(0, 'hello')
  assert.ok(op1 instanceof Uint8Array)
  assert.deepEqual(b.apply(op1), [[1, 0, 'hello']])
  const op2 = b.insert(5, ' world')
  const op3 = a.insert(0, '» ')
  assert.deepEqual(a.apply(op2), [[1, 7, ' world']])
  assert.deepEqual(b.apply(op3), [[1, 0, '» ']])
  assert.equal(a.text(), '» hello world')
  assert.equal(b.text(), a.text())
  assert.deepEqual(a.apply(op2), [], 'a duplicate changes nothing')
  const del = a.delete(0, 2)
  assert.deepEqual(b.apply(del), [[2, 0, '» ']])
  assert.equal(b.text(), 'hello world')
  assert.deepEqual(core.decodeOp(op2), { site: 2, counter: 1, span: 6, kind: 1 })
})

test('code points, not UTF-16 units', () => {
  const a = core.newDoc(3)
  a.insert(0, 'a🙂b')
  assert.equal(a.len(), 3)
  a.insert(2, 'x')
  assert.equal(a.text(), 'a🙂xb')
})

test('snapshot round trip keeps identifiers', () => {
  const a = core.newDoc(4)
  a.insert(0, 'abc')
  const id = a.idAt(1)
  const b = core.loadSnapshot(a.snapshot(), 5)
  assert.equal(b.text(), 'abc')
  assert.equal(b.indexOf(id), 1)
  assert.equal(b.indexOf(new Uint8Array(12)), -1)
  assert.deepEqual(b.origins(), [4, 3])
})

test('editTo makes ops that take another replica to the same text', () => {
  const a = core.newDoc(6)
  const b = core.newDoc(7)
  b.apply(a.insert(0, 'the quick brown fox'))
  const [ops, changes] = a.editTo('the slow brown dog')
  assert.equal(a.text(), 'the slow brown dog')
  let shown = 'the quick brown fox'
  for (const [k, i, t] of changes) shown = k === 1 ? shown.slice(0, i) + t + shown.slice(i) : shown.slice(0, i) + shown.slice(i + t.length)
  assert.equal(shown, 'the slow brown dog')
  for (const op of ops) b.apply(op)
  assert.equal(b.text(), 'the slow brown dog')
})

test('errors come back as exceptions-to-be with codes', () => {
  const a = core.newDoc(8)
  const e = a.insert(5, 'x')
  assert.ok(e instanceof Error)
  assert.equal(e.code, 'crdt.range')
  const bad = core.decodeFrame(new Uint8Array([99]))
  assert.ok(bad instanceof Error)
  assert.equal(core.decodeFrame(new Uint8Array([2, 1, 1, 0])).message.includes('not a server frame'), true)
})

test('frames encode', () => {
  const h = core.encodeHello({ doc: 'notes', lastSeq: 7, site: 9, batch: 1, pending: [new Uint8Array([1, 2])] })
  assert.equal(h[0], 1)
  const s = core.encodeSubmit({ batch: 3, ops: [] })
  assert.equal(s[0], 2)
  const p = core.encodePresence({ anchor: null, head: new Uint8Array(12) })
  assert.equal(p[0], 3)
})
