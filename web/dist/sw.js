// The service worker: the editor opens offline. It precaches the built page
// (the list and version are written in by scripts/build.mjs) and serves it
// cache-first; a navigation falls back to the cached page. API calls and the
// WebSocket always go to the network.
const VERSION = '2df765f9f775f659'
const PRECACHE = [
 "/",
 "/assets/index-Be_E0sOu.js",
 "/assets/index-BsYnQq4X.css",
 "/palimpsest.wasm",
 "/wasm_exec.js"
]
const CACHE = `palimpsest-${VERSION}`

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(PRECACHE)).then(() => self.skipWaiting()))
})

self.addEventListener('activate', (e) => {
  e.waitUntil((async () => {
    for (const k of await caches.keys()) if (k.startsWith('palimpsest-') && k !== CACHE) await caches.delete(k)
    await self.clients.claim()
  })())
})

self.addEventListener('fetch', (e) => {
  const req = e.request
  const url = new URL(req.url)
  if (req.method !== 'GET' || url.origin !== location.origin || url.pathname.startsWith('/v1/')) return
  if (req.mode === 'navigate') {
    e.respondWith(fetch(req).catch(() => caches.match('/', { cacheName: CACHE }).then((r) => r ?? Response.error())))
    return
  }
  e.respondWith(caches.match(req, { cacheName: CACHE, ignoreSearch: true }).then((r) => r ?? fetch(req)))
})
