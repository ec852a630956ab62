// The thin binding to the WebAssembly core (web/wasm/main.go): package crdt
// and the wire codec of package schemas, compiled from the same Go code the
// server runs. Positions are code points; see utf16.ts for the editor's edge.

/** A text change of a replica, in code points: kind 1 inserted, 2 deleted. */
export type Change = [kind: 1 | 2, index: number, text: string]

/** One LSEQ replica (a crdt.Doc). */
export interface Doc {
  site(): number
  len(): number
  text(): string
  /** Inserts locally; returns the encoded op to send, or null when nothing changed. */
  insert(pos: number, text: string): Uint8Array | null
  delete(pos: number, n: number): Uint8Array | null
  /** Folds in an encoded op (idempotent); returns the changes to show. */
  apply(op: Uint8Array): Change[]
  snapshot(): Uint8Array
  idAt(pos: number): Uint8Array
  indexOf(id: Uint8Array): number
  /** Runs of [site, length, site, length, ...]: which site inserted each code point. */
  origins(): number[]
  /** Edits the document into text by local ops: [ops to send, changes to show]. */
  editTo(text: string): [Uint8Array[], Change[]]
  free(): void
}

export interface Welcome { type: 'welcome'; doc: string; site: number; author: string; write: boolean; head: number; snapshotSeq: number; snapshot?: Uint8Array; maxFrame: number; maxOps: number; maxOp: number; expires: number }
export interface WireEvent { type: 'event'; seq: number; prev: number; site: number; counter: number; author: string; time: number; op: Uint8Array }
export interface Ack { type: 'ack'; batch: number; firstSeq: number; lastSeq: number }
export interface Nack { type: 'nack'; batch: number; code: number; codeText: string; message: string }
export interface PresenceUpdate { type: 'presence_update'; site: number; user: string; name: string; anchor: Uint8Array; head: Uint8Array; gone: boolean }
export interface ErrorFrame { type: 'error'; code: number; codeText: string; message: string }
export type ServerFrame = Welcome | WireEvent | Ack | Nack | PresenceUpdate | ErrorFrame

export interface Hello { token?: string; doc: string; lastSeq: number; site: number; batch: number; pending: Uint8Array[] }

export interface Core {
  version: string
  newDoc(site: number): Doc
  loadSnapshot(snapshot: Uint8Array, site: number): Doc
  decodeOp(op: Uint8Array): { site: number; counter: number; span: number; kind: number }
  encodeHello(h: Hello): Uint8Array
  encodeSubmit(s: { batch: number; ops: Uint8Array[] }): Uint8Array
  encodePresence(p: { anchor: Uint8Array | null; head: Uint8Array | null }): Uint8Array
  decodeFrame(frame: Uint8Array): ServerFrame
}

/** CoreError is an error of the core, with the crdt or schemas code. */
export class CoreError extends Error {
  constructor(message: string, readonly code: string) { super(message) }
}

function unwrap<T>(v: unknown): T {
  if (v instanceof Error) throw new CoreError(v.message, (v as Error & { code?: string }).code ?? '')
  return v as T
}

/** checked wraps every function of o so that a returned Error object is thrown. */
function checked<T extends object>(o: T): T {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) {
    out[k] = typeof v === 'function' ? (...a: unknown[]) => {
      const r = unwrap<unknown>((v as (...a: unknown[]) => unknown)(...a))
      return r && typeof r === 'object' && 'apply' in r && 'snapshot' in r ? checked(r as object) : r
    } : v
  }
  return out as T
}

declare global {
  // Set by wasm_exec.js.
  // eslint-disable-next-line no-var
  var Go: { new(): { importObject: WebAssembly.Imports; run(i: WebAssembly.Instance): Promise<void> } }
  // eslint-disable-next-line no-var
  var palimpsestCoreReady: ((core: Core) => void) | undefined
}

let loading: Promise<Core> | undefined

/** loadCore starts the WebAssembly core once and resolves to its binding. */
export function loadCore(base = '/'): Promise<Core> {
  loading ??= (async () => {
    if (typeof globalThis.Go !== 'function') {
      await new Promise<void>((resolve, reject) => {
        const s = document.createElement('script')
        s.src = base + 'wasm_exec.js'
        s.onload = () => resolve()
        s.onerror = () => reject(new Error('loading wasm_exec.js failed'))
        document.head.append(s)
      })
    }
    return instantiate(fetch(base + 'palimpsest.wasm'))
  })()
  return loading
}

/** instantiate runs the core from a fetch of the .wasm file (or its bytes, in Node). */
export async function instantiate(source: Promise<Response> | BufferSource): Promise<Core> {
  const go = new globalThis.Go()
  const ready = new Promise<Core>((resolve) => { globalThis.palimpsestCoreReady = resolve })
  const { instance } = source instanceof Promise
    ? await WebAssembly.instantiateStreaming(source, go.importObject)
    : await WebAssembly.instantiate(source, go.importObject)
  void go.run(instance)
  return checked(await ready)
}
