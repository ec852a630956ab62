// The history panel: a slider over the document's versions (the read API's
// history), the text as of the chosen version (time travel, ?at=), who wrote
// what (blame colours) and a restore action that edits the document back to
// that text with new ops: a new version, history is never rewritten.

import { colorOf } from './editor'
import type { Binding } from './editor'
import type { Session } from './session'

export interface Version { version: number; author: string; time: string; site: number; kind: string; summary?: string }
interface Span { author: string; text: string }

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T

async function getJSON<T>(url: string): Promise<T> {
  const r = await fetch(url, { credentials: 'same-origin', cache: 'no-store' })
  if (!r.ok) throw Object.assign(new Error(`${url}: ${r.status} ${(await r.text()).slice(0, 200)}`), { status: r.status })
  return await r.json() as T
}

export class History {
  versions: Version[] = []
  /** The version the slider shows, 0 for the empty document before the first. */
  shown = 0
  shownText = ''
  private stale = true
  private loading: Promise<void> | null = null
  private seq = 0

  constructor(private session: Session, private binding: Binding, private doc: string) {
    $('history-slider').oninput = () => void this.show(Number(($('history-slider') as HTMLInputElement).value))
    $('history-restore').onclick = () => this.restore()
  }

  private base(): string { return `/v1/documents/${encodeURIComponent(this.doc)}` }

  get open(): boolean { return !$('history').hidden }

  toggle(): void {
    $('history').hidden = !$('history').hidden
    if (this.open) void this.refresh()
  }

  /** onEvent marks the version list stale; an open panel reloads it. */
  onEvent(): void {
    this.stale = true
    if (this.open && !this.loading) setTimeout(() => { if (this.stale) void this.refresh(false) }, 500)
  }

  /** refresh reloads the versions; jump moves the slider to the newest. */
  refresh(jump = true): Promise<void> {
    this.loading ??= (async () => {
      try {
        this.stale = false
        const vs: Version[] = []
        let cursor = ''
        do {
          const page = await getJSON<{ versions: Version[]; next_cursor?: string }>(`${this.base()}/history?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
          vs.push(...page.versions)
          cursor = page.next_cursor ?? ''
        } while (cursor)
        this.versions = vs.filter((v) => v.kind !== 'rejected')
        const s = $('history-slider') as HTMLInputElement
        const wasLast = Number(s.value) >= Number(s.max)
        s.max = String(this.versions.length)
        if (jump || wasLast) s.value = s.max
        await this.show(Number(s.value))
      } catch (err) {
        $('history-label').textContent = `history unavailable: ${(err as Error).message}`
      } finally {
        this.loading = null
      }
    })()
    return this.loading
  }

  /** show displays the document as of the i-th version (0: before the first). */
  async show(i: number): Promise<void> {
    const my = ++this.seq
    const v = i > 0 ? this.versions[i - 1] : undefined
    const version = v?.version ?? 0
    let text = ''
    let spans: Span[] = []
    if (v) {
      const d = await getJSON<{ text: string; version: number }>(`${this.base()}?at=${version}`)
      text = d.text
      spans = await this.blame(version, text)
    }
    if (my !== this.seq) return
    this.shown = version
    this.shownText = text
    $('history-label').textContent = v ? `version ${i} of ${this.versions.length} (sequence ${version}): ${v.author}, ${new Date(v.time).toLocaleString()}${v.summary ? ` — ${v.summary}` : ''}` : 'before the first version'
    const pre = $('history-text')
    pre.dataset.version = String(version)
    pre.replaceChildren(...spans.map((s) => {
      const e = document.createElement('span')
      e.textContent = s.text
      e.dataset.author = s.author
      e.style.backgroundColor = colorOf(s.author, 0.22)
      e.title = s.author
      return e
    }))
    const authors = [...new Set(spans.map((s) => s.author))]
    $('history-authors').replaceChildren(...authors.map((a) => {
      const e = document.createElement('span')
      e.className = 'author'
      e.innerHTML = `<span class="swatch" style="background:${colorOf(a)}"></span>`
      e.append(a)
      return e
    }))
    ;($('history-restore') as HTMLButtonElement).disabled = !v || i === this.versions.length
  }

  /** blame returns who inserted each run of the text at version. */
  private async blame(version: number, text: string): Promise<Span[]> {
    try {
      const b = await getJSON<{ runs?: Array<{ author: string; text: string }> }>(`${this.base()}/blame?at=${version}`)
      if (b.runs) return b.runs.map((r) => ({ author: r.author, text: r.text }))
    } catch { /* no blame API: fall back below */ }
    return this.localBlame(version, text)
  }

  /**
   * localBlame colours the current version from this replica's identifiers: each code point's
   * origin site, and each site's author from the history (the gateway binds a site to the first
   * author that uses it in a document).
   */
  private localBlame(version: number, text: string): Span[] {
    const latest = this.versions.length ? this.versions[this.versions.length - 1].version : 0
    if (version !== latest || this.session.doc.text() !== text) return [{ author: '?', text }]
    const bySite = new Map<number, string>()
    for (const v of this.versions) if (!bySite.has(v.site)) bySite.set(v.site, v.author)
    const runs = this.session.doc.origins()
    const cps = Array.from(text)
    const out: Span[] = []
    let at = 0
    for (let i = 0; i < runs.length; i += 2) {
      const author = bySite.get(runs[i]) ?? (runs[i] === this.session.site ? this.session.author : '?')
      const t = cps.slice(at, at + runs[i + 1]).join('')
      at += runs[i + 1]
      if (out.length && out[out.length - 1].author === author) out[out.length - 1].text += t
      else out.push({ author, text: t })
    }
    return out
  }

  /** restore edits the document into the shown version's text, as a new version. */
  restore(): void {
    const cs = this.session.replace(this.shownText)
    this.binding.applyRemote(cs)
  }
}
