// The browser's durable state, in IndexedDB: per document replica its site,
// the CRDT state (a snapshot) with the log sequence it includes, and every
// local op not yet acknowledged by the server.
//
// Order of effects (the editor relies on it): a local op is written here
// before it is sent; when the server acknowledges ops, the snapshot that
// includes them and the deletion of their pending entries are one
// transaction, so a reload never sees a state whose own-site clock is behind
// an op already handed to the server (the site would reuse its counters).

export interface Replica {
  doc: string
  /** Which replica of the document on this browser: `${user}/${n}` (see openReplica). */
  slot: string
  site: number
  lastSeq: number
  snapshot: Uint8Array | null
  updated: number
}

export interface PendingOp { counter: number; raw: Uint8Array }

const DB = 'palimpsest'
const VERSION = 1

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error)
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'))
  })
}

export class Store {
  private constructor(private db: IDBDatabase) {}

  static async open(name = DB): Promise<Store> {
    const r = indexedDB.open(name, VERSION)
    r.onupgradeneeded = () => {
      const db = r.result
      db.createObjectStore('replicas', { keyPath: ['doc', 'slot'] })
      db.createObjectStore('pending', { keyPath: ['doc', 'site', 'counter'] })
    }
    return new Store(await req(r))
  }

  async replica(doc: string, slot: string): Promise<Replica | undefined> {
    const tx = this.db.transaction('replicas', 'readonly')
    return req(tx.objectStore('replicas').get([doc, slot]) as IDBRequest<Replica | undefined>)
  }

  /** pending returns site's unacknowledged ops of doc, in counter order. */
  async pending(doc: string, site: number): Promise<PendingOp[]> {
    const tx = this.db.transaction('pending', 'readonly')
    const range = IDBKeyRange.bound([doc, site, 0], [doc, site, 2 ** 32])
    const rows = await req(tx.objectStore('pending').getAll(range)) as Array<{ counter: number; raw: Uint8Array }>
    return rows.map((r) => ({ counter: r.counter, raw: r.raw }))
  }

  /**
   * addPending stores ops before they are sent. Relaxed durability: the commit survives the tab
   * closing or crashing (the browser process writes it) but may not survive the machine losing
   * power; it commits in about a millisecond, so a keystroke just before a close is kept.
   */
  async addPending(doc: string, site: number, ops: PendingOp[]): Promise<void> {
    const tx = this.db.transaction('pending', 'readwrite', { durability: 'relaxed' })
    const st = tx.objectStore('pending')
    for (const op of ops) st.put({ doc, site, counter: op.counter, raw: op.raw })
    await done(tx)
  }

  /**
   * save writes the replica, the local ops its snapshot includes that may not be stored yet
   * (unsaved), and drops the acknowledged ops (acked counters), in one transaction: a stored
   * snapshot never holds a local op that is neither pending here nor in the server's log.
   */
  async save(r: Replica, acked: number[] = [], unsaved: PendingOp[] = []): Promise<void> {
    const tx = this.db.transaction(['replicas', 'pending'], 'readwrite', { durability: 'relaxed' })
    tx.objectStore('replicas').put(r)
    const st = tx.objectStore('pending')
    for (const op of unsaved) st.put({ doc: r.doc, site: r.site, counter: op.counter, raw: op.raw })
    for (const c of acked) st.delete([r.doc, r.site, c])
    await done(tx)
  }

  /** documents lists the documents with a replica here, most recently used first. */
  async documents(): Promise<Array<{ doc: string; updated: number }>> {
    const tx = this.db.transaction('replicas', 'readonly')
    const all = await req(tx.objectStore('replicas').getAll()) as Replica[]
    const m = new Map<string, number>()
    for (const r of all) m.set(r.doc, Math.max(m.get(r.doc) ?? 0, r.updated))
    return [...m].map(([doc, updated]) => ({ doc, updated })).sort((a, b) => b.updated - a.updated)
  }
}

/** randomSite draws a nonzero 32-bit site. */
export function randomSite(): number {
  const a = new Uint32Array(1)
  do crypto.getRandomValues(a); while (a[0] === 0)
  return a[0]
}

/**
 * openReplica finds this tab's replica slot of doc: two tabs of one browser must not edit as
 * the same site, so each holds a Web Lock on its slot for as long as release is not called,
 * and a second tab takes the next free slot (its own site, snapshot and pending ops).
 */
export async function claimSlot(doc: string, user: string): Promise<{ slot: string; release: () => void }> {
  if (!('locks' in navigator)) return { slot: `${user}/0`, release: () => {} }
  for (let n = 0; ; n++) {
    const slot = `${user}/${n}`
    let release!: () => void
    const held = new Promise<void>((r) => { release = r })
    const got = await new Promise<boolean>((resolve) => {
      void navigator.locks.request(`palimpsest:${doc}:${slot}`, { ifAvailable: true }, (lock) => {
        resolve(lock !== null)
        return lock ? held : undefined
      })
    })
    if (got) return { slot, release }
  }
}
