// Session keeps one document replica in sync with the server over the
// WebSocket protocol palimpsest.v1 (schemas/PROTOCOL.md), offline-first:
// local ops go to IndexedDB, then to the server in debounced batches; on
// reconnect the Hello carries the last applied sequence and the pending ops,
// which the server takes idempotently, so nothing is lost or doubled.

import type { Change, Core, Doc, ServerFrame, Welcome } from './core'
import { Store, randomSite, type Replica } from './store'

export type Status = 'connecting' | 'connected' | 'syncing' | 'offline' | 'error'

export interface Peer { site: number; user: string; name: string; anchor: Uint8Array; head: Uint8Array; lastAnchor: number; lastHead: number }

export interface SessionEvents {
  /** Remote changes, in code points, to show in the editor (never the local edits). */
  changes(cs: Change[]): void
  /** The whole text was replaced (a snapshot from the server). */
  reset(text: string): void
  status(s: Status, pending: number, detail: string): void
  presence(peers: Map<number, Peer>): void
  /** Every applied event, for the history panel's live updates. */
  event?(seq: number, author: string, site: number): void
}

export interface SessionOptions {
  wsUrl: string
  /** Debounce of sending local ops, in ms. */
  sendDelay?: number
  slot: string
  token?: string
}

const CLOSE_FATAL = new Set([4000, 4002, 4003, 4004, 4009])
// Nack codes after which reconnecting and resending the pending ops is the fix (as client/session.go).
const NACK_TRANSIENT = new Set([3001, 2004, 2001, 3002, 3003, 3004, 3005])
const DEFAULT_MAX_OPS = 256
const MAX_INFLIGHT = 8

export class Session {
  doc!: Doc
  site = 0
  lastSeq = 0
  author = ''
  status: Status = 'connecting'
  detail = ''
  readonly peers = new Map<number, Peer>()

  private pending: Array<{ counter: number; raw: Uint8Array }> = [] // durable, unacknowledged
  private unsaved: Array<{ counter: number; raw: Uint8Array }> = [] // applied, being written
  private writing: Promise<void> | null = null
  private sent = 0
  private inflight: Array<{ id: number; n: number }> = []
  private batch = 0
  private ws: WebSocket | null = null
  private welcome: Welcome | null = null
  private caughtUp = false
  private backoff = 50
  private timer: number | undefined
  private sendTimer: number | undefined
  private saveTimer: number | undefined
  private presenceTimer: number | undefined
  private cursor: { anchor: number; head: number } | null = null
  private closed = false
  private fatal = false
  private saving: Promise<void> = Promise.resolve()

  constructor(private core: Core, private store: Store, readonly docId: string, private opts: SessionOptions, private on: SessionEvents) {}

  /** open restores the replica from IndexedDB (or makes a new one) and starts connecting. */
  async open(): Promise<string> {
    const r = await this.store.replica(this.docId, this.opts.slot)
    if (r) {
      this.site = r.site
      this.lastSeq = r.lastSeq
      this.doc = r.snapshot ? this.core.loadSnapshot(r.snapshot, r.site) : this.core.newDoc(r.site)
    } else {
      this.site = randomSite()
      this.doc = this.core.newDoc(this.site)
      await this.store.save(this.replicaRecord())
    }
    this.pending = await this.store.pending(this.docId, this.site)
    for (const p of this.pending) this.doc.apply(p.raw) // already in the snapshot: a no-op
    addEventListener('online', this.onOnline)
    addEventListener('offline', this.onOffline)
    this.emitStatus()
    if (navigator.onLine) this.connect()
    else this.setStatus('offline', 'the browser is offline')
    return this.doc.text()
  }

  /** unsavedCount is how many local ops are not in IndexedDB yet (a write is under way). */
  unsavedCount(): number { return this.unsaved.length }

  /** pendingCount is how many local ops the server has not acknowledged yet. */
  pendingCount(): number { return this.pending.length + this.unsaved.length }

  /** local takes the ops of a local edit (already applied to doc): store, then send. */
  local(ops: Array<Uint8Array | null>): void {
    for (const raw of ops) {
      if (!raw) continue
      this.unsaved.push({ counter: this.core.decodeOp(raw).counter, raw })
    }
    this.flushWrites()
    this.scheduleSave()
    this.emitStatus()
  }

  private flushWrites(): void {
    if (this.writing || this.unsaved.length === 0) return
    const batch = this.unsaved.slice()
    this.writing = this.store.addPending(this.docId, this.site, batch).then(() => {
      this.unsaved.splice(0, batch.length)
      this.pending.push(...batch)
      this.writing = null
      this.scheduleSend()
      this.flushWrites()
    }, (err) => {
      this.writing = null
      this.setStatus('error', `saving edits in IndexedDB failed: ${err}`)
    })
  }

  private scheduleSend(): void {
    if (this.sendTimer !== undefined) return
    this.sendTimer = setTimeout(() => { this.sendTimer = undefined; this.pump() }, this.opts.sendDelay ?? 40) as unknown as number
  }

  /** setCursor publishes the local selection (code points) as presence, throttled. */
  setCursor(anchor: number, head: number): void {
    this.cursor = { anchor, head }
    if (this.presenceTimer !== undefined) return
    this.presenceTimer = setTimeout(() => { this.presenceTimer = undefined; this.sendPresence() }, 50) as unknown as number
  }

  private idBefore(pos: number): Uint8Array | null {
    const n = this.doc.len()
    return pos <= 0 || n === 0 ? null : this.doc.idAt(Math.min(pos, n) - 1)
  }

  /** position returns the code-point position just after id (0 for none or unknown). */
  position(id: Uint8Array, last: number): number {
    if (id.length === 0) return 0
    const i = this.doc.indexOf(id)
    return i >= 0 ? i + 1 : Math.min(last, this.doc.len())
  }

  private sendPresence(): void {
    if (!this.cursor || !this.ws || !this.welcome) return
    const f = this.core.encodePresence({ anchor: this.idBefore(this.cursor.anchor), head: this.idBefore(this.cursor.head) })
    this.ws.send(f)
  }

  /** replace edits the document into text (the history panel's restore) as new local ops. */
  replace(text: string): Change[] {
    const [ops, cs] = this.doc.editTo(text)
    this.local(ops)
    return cs
  }

  close(): void {
    this.closed = true
    removeEventListener('online', this.onOnline)
    removeEventListener('offline', this.onOffline)
    clearTimeout(this.timer)
    this.ws?.close(1000)
    void this.saveNow()
  }

  private onOnline = () => { if (!this.ws && !this.fatal) { this.backoff = 50; this.connect() } }
  private onOffline = () => { this.ws?.close(1000, 'offline'); this.dropSocket('the browser is offline') }

  private connect(): void {
    clearTimeout(this.timer)
    if (this.closed || this.fatal || this.ws) return
    this.setStatus(this.status === 'offline' ? 'offline' : 'connecting', 'connecting…')
    const ws = new WebSocket(this.opts.wsUrl, 'palimpsest.v1')
    ws.binaryType = 'arraybuffer'
    this.ws = ws
    ws.onopen = () => {
      const n = Math.min(this.pending.length, DEFAULT_MAX_OPS)
      let batch = 0
      if (n > 0) {
        batch = ++this.batch
        this.inflight = [{ id: batch, n }]
        this.sent = n
      }
      ws.send(this.core.encodeHello({ token: this.opts.token ?? '', doc: this.docId, lastSeq: this.lastSeq, site: this.site, batch, pending: this.pending.slice(0, n).map((p) => p.raw) }))
    }
    ws.onmessage = (m) => {
      if (this.ws !== ws) return
      try {
        this.onFrame(this.core.decodeFrame(new Uint8Array(m.data as ArrayBuffer)))
      } catch (err) {
        console.warn('palimpsest: dropping the connection:', err)
        ws.close(4000)
        this.dropSocket(String(err))
      }
    }
    ws.onclose = (e) => {
      if (this.ws !== ws) return
      if (CLOSE_FATAL.has(e.code)) {
        this.fatal = true
        this.dropSocket(`closed by the server: ${e.code} ${e.reason || this.detail}`)
        this.setStatus('error', e.code === 4004 || e.code === 4001 ? 'not logged in: paste the dev token' : `the server refused: ${e.code} ${e.reason || this.detail}`)
        return
      }
      this.dropSocket(e.reason || 'connection lost')
    }
  }

  private dropSocket(why: string): void {
    if (this.ws) { this.ws.onclose = null; this.ws.onmessage = null; try { this.ws.close() } catch { /* already */ } }
    this.ws = null
    this.welcome = null
    this.caughtUp = false
    this.sent = 0
    this.inflight = []
    if (this.fatal || this.closed) return
    this.setStatus('offline', why)
    this.peers.clear()
    this.on.presence(this.peers)
    if (navigator.onLine) {
      const wait = this.backoff / 2 + Math.random() * this.backoff / 2
      this.backoff = Math.min(this.backoff * 2, 5000)
      this.timer = setTimeout(() => this.connect(), wait) as unknown as number
    }
  }

  private onFrame(f: ServerFrame): void {
    switch (f.type) {
      case 'welcome': {
        if (f.snapshot && f.snapshotSeq > this.lastSeq) {
          const d = this.core.loadSnapshot(f.snapshot, this.site)
          for (const p of [...this.pending, ...this.unsaved]) d.apply(p.raw)
          this.doc.free()
          this.doc = d
          this.lastSeq = f.snapshotSeq
          this.on.reset(d.text())
        }
        this.welcome = f
        this.author = f.author
        this.backoff = 50
        this.checkCaughtUp()
        this.pump()
        this.sendPresence()
        return
      }
      case 'event': {
        if (f.seq <= this.lastSeq) return
        if (f.prev > this.lastSeq) throw new Error(`gap: event ${f.seq} follows ${f.prev}, last applied ${this.lastSeq}`)
        const cs = this.doc.apply(f.op)
        this.lastSeq = f.seq
        if (cs.length) this.on.changes(cs)
        this.on.event?.(f.seq, f.author, f.site)
        if (cs.length && this.peers.size) this.on.presence(this.peers)
        this.checkCaughtUp()
        this.scheduleSave()
        return
      }
      case 'ack': {
        const b = this.inflight[0]
        if (!b || b.id !== f.batch) throw new Error(`ack of batch ${f.batch}, which is not the oldest in flight`)
        this.inflight.shift()
        const acked = this.pending.splice(0, b.n)
        this.sent -= b.n
        void this.saveNow(acked.map((p) => p.counter))
        this.emitStatus()
        this.pump()
        return
      }
      case 'nack':
        this.detail = `batch refused: ${f.codeText}: ${f.message}`
        if (!NACK_TRANSIENT.has(f.code)) {
          // Resending cannot help; the edits stay in IndexedDB and the status says why.
          this.fatal = true
          this.ws?.close(1000)
          this.dropSocket(this.detail)
          this.setStatus('error', this.detail)
          return
        }
        throw new Error(this.detail)
      case 'presence_update': {
        if (f.site === this.site) return
        if (f.gone) this.peers.delete(f.site)
        else {
          const old = this.peers.get(f.site)
          this.peers.set(f.site, { site: f.site, user: f.user, name: f.name || f.user, anchor: f.anchor, head: f.head, lastAnchor: old?.lastAnchor ?? 0, lastHead: old?.lastHead ?? 0 })
        }
        this.on.presence(this.peers)
        return
      }
      case 'error':
        this.detail = `${f.codeText}: ${f.message}`
        return
    }
  }

  private checkCaughtUp(): void {
    if (!this.caughtUp && this.welcome && this.lastSeq >= this.welcome.head) this.caughtUp = true
    this.emitStatus()
  }

  /** pump sends the durable pending ops not yet sent, in batches. */
  private pump(): void {
    const ws = this.ws
    if (!ws || !this.welcome || ws.readyState !== WebSocket.OPEN) return
    const maxOps = this.welcome.maxOps || DEFAULT_MAX_OPS
    while (this.inflight.length < MAX_INFLIGHT && this.sent < this.pending.length) {
      const n = Math.min(this.pending.length - this.sent, maxOps)
      const id = ++this.batch
      ws.send(this.core.encodeSubmit({ batch: id, ops: this.pending.slice(this.sent, this.sent + n).map((p) => p.raw) }))
      this.inflight.push({ id, n })
      this.sent += n
    }
    this.emitStatus()
  }

  private replicaRecord(): Replica {
    return { doc: this.docId, slot: this.opts.slot, site: this.site, lastSeq: this.lastSeq, snapshot: this.doc.snapshot(), updated: Date.now() }
  }

  private scheduleSave(): void {
    if (this.saveTimer !== undefined) return
    this.saveTimer = setTimeout(() => { this.saveTimer = undefined; void this.saveNow() }, 300) as unknown as number
  }

  /** saveNow writes the snapshot (and drops acknowledged ops) in one transaction, in order. */
  private saveNow(acked: number[] = []): Promise<void> {
    const rec = this.replicaRecord()
    const unsaved = this.unsaved.slice()
    this.saving = this.saving.then(() => this.store.save(rec, acked, unsaved)).catch((err) => {
      this.setStatus('error', `saving the document in IndexedDB failed: ${err}`)
    })
    return this.saving
  }

  private setStatus(s: Status, detail: string): void {
    this.status = s
    this.detail = detail
    this.emitStatus()
  }

  private emitStatus(): void {
    if (this.ws && this.welcome && this.status !== 'error') {
      this.status = this.caughtUp && this.pendingCount() === 0 ? 'connected' : 'syncing'
      this.detail = ''
    }
    this.on.status(this.status, this.pendingCount(), this.detail)
  }
}
