// The editor page: login, the document list, the editor and the history
// panel. State lives in IndexedDB (store.ts) and syncs over the WebSocket
// (session.ts); the page itself is cached by the service worker (sw.js), so
// it opens and edits offline.

import './style.css'
import { loadCore, type Core } from './core'
import { Binding } from './editor'
import { History } from './history'
import { Session, type Status } from './session'
import { Store, claimSlot } from './store'

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T

interface Me { subject: string; name: string }

interface App {
  ready: Promise<void>
  core?: Core
  session?: Session
  binding?: Binding
  history?: History
  status: Status
  pending: number
  me?: Me
  text(): string
  serviceWorker: Promise<boolean>
  /** From the script's start to the editor's first render, and to the core's start. */
  firstLoadMs?: number
  coreMs?: number
}

const app: App = {
  ready: Promise.resolve(),
  status: 'connecting',
  pending: 0,
  text: () => app.binding?.view.state.doc.toString() ?? '',
  serviceWorker: registerServiceWorker(),
}
;(globalThis as unknown as { palimpsest: App }).palimpsest = app

async function registerServiceWorker(): Promise<boolean> {
  if (!('serviceWorker' in navigator)) return false
  try {
    await navigator.serviceWorker.register('/sw.js', { scope: '/' })
    await navigator.serviceWorker.ready
    return true
  } catch (err) {
    console.warn('palimpsest: no service worker, the page will not open offline:', err)
    return false
  }
}

/** whoami asks the server who the session cookie belongs to; offline it remembers. */
async function whoami(): Promise<Me | null | 'offline'> {
  try {
    const r = await fetch('/v1/session', { credentials: 'same-origin', cache: 'no-store' })
    if (r.ok) {
      const me = await r.json() as Me
      localStorage.setItem('palimpsest.me', JSON.stringify(me))
      return me
    }
    if (r.status === 401) return null
    throw new Error(`GET /v1/session: ${r.status}`)
  } catch {
    const m = localStorage.getItem('palimpsest.me')
    return m ? JSON.parse(m) as Me : 'offline'
  }
}

function showLogin(message = ''): Promise<Me> {
  $('login').hidden = false
  $('login-error').textContent = message
  return new Promise((resolve) => {
    $('login-form').onsubmit = async (e) => {
      e.preventDefault()
      const token = ($('login-token') as HTMLTextAreaElement).value.trim()
      const r = await fetch('/v1/session', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }) })
      if (!r.ok) {
        $('login-error').textContent = `refused: ${(await r.json().catch(() => ({}))).message ?? r.status}`
        return
      }
      ;($('login-token') as HTMLTextAreaElement).value = ''
      $('login').hidden = true
      const me = await r.json() as Me
      localStorage.setItem('palimpsest.me', JSON.stringify(me))
      resolve(me)
    }
  })
}

function setStatus(s: Status, pending: number, detail: string): void {
  app.status = s
  app.pending = pending
  const el = $('status')
  el.dataset.status = s
  el.dataset.pending = String(pending)
  const waiting = pending === 1 ? '1 edit waiting' : `${pending} edits waiting`
  el.textContent = s === 'connected' ? 'connected'
    : s === 'offline' ? `offline (${waiting})`
    : s === 'syncing' ? (pending ? `syncing (${waiting})` : 'syncing')
    : s === 'error' ? `error: ${detail}` : 'connecting…'
  el.title = detail
  if (s === 'error' && /not logged in/.test(detail)) void relogin()
}

let relogging = false
async function relogin(): Promise<void> {
  if (relogging) return
  relogging = true
  app.me = await showLogin('your session expired or is missing: log in again')
  relogging = false
  location.reload()
}

function currentDoc(): string | null {
  const m = /^#\/d\/([A-Za-z0-9_-]{1,128})$/.exec(location.hash)
  return m ? m[1] : null
}

async function renderList(store: Store, current: string | null): Promise<void> {
  const ul = $('doc-list')
  const docs = (await store.documents()).map((d) => d.doc)
  if (current && !docs.includes(current)) docs.unshift(current)
  ul.replaceChildren(...docs.map((d) => {
    const li = document.createElement('li')
    const a = document.createElement('a')
    a.href = `#/d/${d}`
    a.textContent = d
    if (d === current) a.className = 'current'
    li.append(a)
    return li
  }))
}

/** openDoc shows doc in the editor; the function it returns closes it again. */
async function openDoc(core: Core, store: Store, doc: string, me: Me): Promise<() => void> {
  const { slot, release } = await claimSlot(doc, me.subject)
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:'
  let binding: Binding | undefined
  const session = new Session(core, store, doc, { wsUrl: `${proto}//${location.host}/v1/ws`, slot }, {
    changes: (cs) => binding?.applyRemote(cs),
    reset: (t) => binding?.reset(t),
    status: setStatus,
    presence: (peers) => binding?.showPeers(peers),
    event: () => app.history?.onEvent(),
  })
  const text = await session.open()
  binding = new Binding($('editor'), session, text)
  app.session = session
  app.binding = binding
  app.history = new History(session, binding, doc)
  $('doc-title').replaceChildren(Object.assign(document.createElement('strong'), { textContent: doc }), historyButton())
  binding.view.focus()
  return () => {
    session.close()
    binding?.destroy()
    release()
    $('history').hidden = true
    app.session = app.binding = app.history = undefined
  }
}

function historyButton(): HTMLButtonElement {
  const b = document.createElement('button')
  b.id = 'history-toggle'
  b.textContent = 'History'
  b.onclick = () => app.history?.toggle()
  return b
}

async function main(): Promise<void> {
  const t0 = performance.now()
  const [core, store] = await Promise.all([loadCore(), Store.open()])
  app.coreMs = performance.now() - t0
  app.core = core
  let me = await whoami()
  if (me === null) me = await showLogin()
  if (me === 'offline') me = await showLogin('offline and never logged in on this browser')
  app.me = me
  $('user').textContent = me.name || me.subject
  $('open-form').onsubmit = (e) => {
    e.preventDefault()
    location.hash = `#/d/${($('open-doc') as HTMLInputElement).value}`
  }
  let close: (() => void) | undefined
  const route = async () => {
    close?.()
    close = undefined
    $('editor').replaceChildren()
    $('doc-title').replaceChildren()
    const doc = currentDoc()
    await renderList(store, doc)
    if (doc) close = await openDoc(core, store, doc, me as Me)
    else {
      setStatus('connected', 0, '')
      $('editor').textContent = 'Open a document on the left, or type a new id.'
    }
  }
  addEventListener('hashchange', () => { app.ready = route() })
  await route()
  app.firstLoadMs = performance.now() - t0
}

app.ready = main().catch((err) => {
  console.error(err)
  setStatus('error', 0, String(err))
  throw err
})
