// The browser tests: Playwright (playwright-core) driving Debian's Chromium
// against a running `palimpsest serve`. Run by web/e2e_test.go, which starts
// the server and checks the log afterwards; by hand:
//   PALIMPSEST_URL=http://127.0.0.1:8080 PALIMPSEST_TOKEN_A=... PALIMPSEST_TOKEN_B=... node e2e/run.mjs
// It prints one line `RESULT {json}` for the Go test and exits non-zero on failure.
import { chromium } from 'playwright-core'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const base = process.env.PALIMPSEST_URL
const tokenA = process.env.PALIMPSEST_TOKEN_A
const tokenB = process.env.PALIMPSEST_TOKEN_B
const artifacts = process.env.PALIMPSEST_ARTIFACTS ?? join(dirname(fileURLToPath(import.meta.url)), 'artifacts')
const only = process.env.PALIMPSEST_E2E_ONLY ?? ''
if (!base || !tokenA || !tokenB) throw new Error('set PALIMPSEST_URL, PALIMPSEST_TOKEN_A and PALIMPSEST_TOKEN_B')
mkdirSync(artifacts, { recursive: true })
const run = Date.now().toString(36)
const result = { docs: {}, timings: {} }

const browser = await chromium.launch({
  executablePath: process.env.PALIMPSEST_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})

const log = (...a) => console.log(`[e2e ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a)
const t0 = Date.now()

/** login opens a fresh browser context and logs in with the token through the login box. */
async function login(token, label) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 560 } })
  const page = await ctx.newPage()
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log(`${label} console.${m.type()}:`, m.text()) })
  page.on('pageerror', (e) => log(`${label} page error:`, e.message))
  await page.goto(base + '/')
  await page.locator('#login-token').waitFor({ state: 'visible' })
  await page.fill('#login-token', token)
  await page.click('#login button[type=submit]')
  await page.locator('#login').waitFor({ state: 'hidden' })
  await page.waitForFunction(() => globalThis.palimpsest?.me)
  return { ctx, page, label }
}

async function openDoc(c, doc) {
  await c.page.goto(`${base}/#/d/${doc}`)
  await c.page.waitForFunction((d) => globalThis.palimpsest.session?.docId === d && globalThis.palimpsest.binding, doc)
  await synced(c)
}

/** synced waits until the page is connected with nothing pending. */
async function synced(c, timeout = 30000) {
  await c.page.waitForFunction(() => globalThis.palimpsest.status === 'connected' && globalThis.palimpsest.pending === 0, null, { timeout })
}

const text = (c) => c.page.evaluate(() => globalThis.palimpsest.text())

async function moveToEnd(c) {
  await c.page.click('.cm-content')
  await c.page.keyboard.press('Control+End')
}

// serverText returns the read API's text of doc once it equals want (the state projection
// follows the log a moment behind the acknowledgements), or what it last said after the
// deadline; null when the server has no read API.
async function serverText(doc, want, timeout = 15000) {
  const end = Date.now() + timeout
  for (;;) {
    const r = await fetch(`${base}/v1/documents/${doc}`, { headers: { Authorization: `Bearer ${tokenA}` } })
    if (r.status === 404 && !(r.headers.get('content-type') ?? '').includes('json')) return null
    const got = r.ok ? (await r.json()).text : undefined
    if (got === want || Date.now() > end) return got ?? null
    await new Promise((res) => setTimeout(res, 100))
  }
}

async function waitEqual(pages, timeout = 30000) {
  const end = Date.now() + timeout
  for (;;) {
    const ts = await Promise.all(pages.map(text))
    if (ts.every((t) => t === ts[0])) return ts[0]
    if (Date.now() > end) throw new Error(`texts differ: ${JSON.stringify(ts)}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

async function test(name, f) {
  if (only && !name.includes(only)) return
  const t = Date.now()
  log(`--- ${name}`)
  await f()
  log(`ok ${name} (${Date.now() - t} ms)`)
}

let failed = false
try {
  const a = await login(tokenA, 'A')
  const b = await login(tokenB, 'B')

  await test('first load', async () => {
    const nav = await a.page.evaluate(() => {
      const n = performance.getEntriesByType('navigation')[0]
      return { domContentLoaded: n.domContentLoadedEventEnd, load: n.loadEventEnd, transferSize: n.transferSize }
    })
    const wasm = await a.page.evaluate(() => performance.getEntriesByName(location.origin + '/palimpsest.wasm')[0]?.duration ?? null)
    const core = await a.page.evaluate(() => globalThis.palimpsest.coreMs)
    result.timings = { cold: { ...nav, wasmFetchMs: wasm, coreReadyMs: core } }
    // A second visit: the service worker serves the page and the core from its cache.
    await a.page.reload()
    await a.page.evaluate(() => globalThis.palimpsest.ready)
    result.timings.warm = await a.page.evaluate(() => {
      const n = performance.getEntriesByType('navigation')[0]
      return { domContentLoaded: n.domContentLoadedEventEnd, load: n.loadEventEnd, coreReadyMs: globalThis.palimpsest.coreMs, editorReadyMs: globalThis.palimpsest.firstLoadMs }
    })
    log('timings', JSON.stringify(result.timings))
  })

  await test('two contexts type into the same line at once and converge', async () => {
    const doc = `race-${run}`
    await openDoc(a, doc)
    await openDoc(b, doc)
    await moveToEnd(a)
    await a.page.keyboard.type('The same line: ')
    await synced(a)
    await waitEqual([a, b])
    await moveToEnd(a)
    await moveToEnd(b)
    await Promise.all([
      a.page.keyboard.type('alice-types-here ', { delay: 15 }),
      b.page.keyboard.type('BOB-TYPES-THERE ', { delay: 15 }),
    ])
    await Promise.all([synced(a), synced(b)])
    const final = await waitEqual([a, b])
    assert.equal(final.split('\n').length, 1, 'one line')
    for (const s of ['The same line: ', 'alice-types-here ', 'BOB-TYPES-THERE ']) {
      // Concurrent typing at one spot may interleave the two runs; each run's own order stays.
      let i = 0
      for (const ch of final) if (ch === s[i]) i++
      assert.equal(i, s.length, `${JSON.stringify(s)} is a subsequence of ${JSON.stringify(final)}`)
    }
    assert.equal(final.length, 'The same line: '.length + 'alice-types-here '.length + 'BOB-TYPES-THERE '.length)
    const srv = await serverText(doc, final)
    if (srv !== null) assert.equal(srv, final, 'the read API has the same text')
    result.docs.race = { doc, text: final, readAPI: srv !== null }

    // Two cursors: Bob selects the second word, Alice's cursor sits at the end; Alice sees Bob in his colour.
    await b.page.click('.cm-content')
    await b.page.keyboard.press('Home')
    await b.page.keyboard.press('Control+ArrowRight')
    await b.page.keyboard.press('Shift+Control+ArrowRight')
    await a.page.click('.cm-content')
    await a.page.keyboard.press('End')
    await a.page.locator('.cm-peer-name', { hasText: /bob/i }).waitFor({ timeout: 10000 })
    await b.page.locator('.cm-peer-name', { hasText: /alice/i }).waitFor({ timeout: 10000 })
    await a.page.waitForTimeout(300)
    await a.page.screenshot({ path: join(artifacts, 'two-cursors.png') })
    result.screenshot = join(artifacts, 'two-cursors.png')
  })

  await test('offline: type, reload offline, reconnect; every keystroke lands once', async () => {
    const c = await login(tokenA, 'C')
    const doc = `offline-${run}`
    await openDoc(c, doc)
    await c.page.waitForFunction(async () => (await globalThis.palimpsest.serviceWorker) && navigator.serviceWorker.controller !== null, null, { timeout: 15000 })
    await moveToEnd(c)
    const typed = ['online. ', 'offline one. ', 'after reload.']
    await c.page.keyboard.type(typed[0])
    await synced(c)
    await c.ctx.setOffline(true)
    await c.page.waitForFunction(() => globalThis.palimpsest.status === 'offline')
    await c.page.keyboard.type(typed[1], { delay: 10 })
    await c.page.waitForFunction((n) => globalThis.palimpsest.status === 'offline' && globalThis.palimpsest.pending === n, typed[1].length)
    const label = await c.page.textContent('#status')
    assert.equal(label, `offline (${typed[1].length} edits waiting)`)
    // The last keystroke's IndexedDB write commits within a millisecond or so; reload after it.
    await c.page.waitForFunction(() => globalThis.palimpsest.session.unsavedCount() === 0)
    await c.page.reload()
    await c.page.evaluate(() => globalThis.palimpsest.ready)
    assert.equal(await text(c), typed[0] + typed[1], 'the reloaded page has the offline edits')
    assert.equal(await c.page.evaluate(() => globalThis.palimpsest.pending), typed[1].length)
    await moveToEnd(c)
    await c.page.keyboard.type(typed[2], { delay: 10 })
    await c.page.waitForFunction((n) => globalThis.palimpsest.pending === n, typed[1].length + typed[2].length)
    await c.page.screenshot({ path: join(artifacts, 'offline.png') })
    await c.ctx.setOffline(false)
    await synced(c)
    const final = await text(c)
    assert.equal(final, typed.join(''))
    const srv = await serverText(doc, final)
    if (srv !== null) assert.equal(srv, final)
    result.docs.offline = { doc, text: final, keystrokes: typed.join('').length, readAPI: srv !== null }
    await c.ctx.close()
  })

  await test('history slider shows an old version; blame shows two authors; restore', async () => {
    const probe = await fetch(`${base}/v1/documents/probe/history`)
    if (probe.status === 404 && !(probe.headers.get('content-type') ?? '').includes('json')) {
      result.notRun = 'history: the server does not serve the read API (/v1/documents/...)'
      log(result.notRun)
      return
    }
    const doc = `history-${run}`
    await openDoc(a, doc)
    await openDoc(b, doc)
    await moveToEnd(a)
    await a.page.keyboard.type('first line\n')
    await synced(a)
    await waitEqual([a, b])
    await moveToEnd(b)
    await b.page.keyboard.type('second line')
    await synced(b)
    await waitEqual([a, b])
    await a.page.click('#history-toggle')
    await a.page.waitForFunction(() => globalThis.palimpsest.history.versions.length === 22, null, { timeout: 15000 })
    // Blame at the newest version: two authors.
    await a.page.waitForFunction(() => document.querySelectorAll('#history-authors .author').length === 2, null, { timeout: 15000 })
    const authors = await a.page.$$eval('#history-authors .author', (es) => es.map((e) => e.textContent))
    assert.deepEqual(authors.map((s) => s.toLowerCase()).sort(), ['alice', 'bob'])
    // Version 11: only Alice's line.
    await a.page.$eval('#history-slider', (s) => { s.value = '11'; s.dispatchEvent(new Event('input')) })
    await a.page.waitForFunction(() => globalThis.palimpsest.history.shownText === 'first line\n' && document.querySelector('#history-text').textContent === 'first line\n')
    await a.page.screenshot({ path: join(artifacts, 'history.png') })
    await a.page.click('#history-restore')
    await synced(a)
    assert.equal(await waitEqual([a, b]), 'first line\n')
    result.docs.history = { doc, text: 'first line\n', authors }
  })
} catch (err) {
  failed = true
  console.error('FAIL', err)
} finally {
  await browser.close()
}
console.log('RESULT ' + JSON.stringify(result))
process.exit(failed ? 1 : 0)
