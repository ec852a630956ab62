// The CodeMirror 6 view bound to a Session: local transactions become CRDT
// ops (UTF-16 offsets converted to code points here), remote changes become
// transactions that CodeMirror maps the local selection through, so a remote
// edit never moves the local cursor off its text. Other users' cursors and
// selections are decorations in their colour, with their name.

import { Annotation, EditorState, StateEffect, StateField, Transaction, type Extension } from '@codemirror/state'
import { Decoration, EditorView, WidgetType, drawSelection, keymap, type DecorationSet } from '@codemirror/view'
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands'
import type { Change } from './core'
import type { Peer, Session } from './session'
import { cpLen, cpToUtf16, hasAstral, utf16ToCp } from './utf16'

function chunks(s: string, n: number): string[] {
  const out: string[] = []
  const cps = Array.from(s)
  for (let i = 0; i < cps.length; i += n) out.push(cps.slice(i, i + n).join(''))
  return out
}

/** remote marks transactions that apply other replicas' changes. */
export const remote = Annotation.define<boolean>()

interface Cursor { from: number; to: number; head: number; name: string; color: string; bg: string }

const setPeers = StateEffect.define<Cursor[]>()

class CaretWidget extends WidgetType {
  constructor(readonly name: string, readonly color: string) { super() }
  eq(o: CaretWidget) { return o.name === this.name && o.color === this.color }
  toDOM() {
    const s = document.createElement('span')
    s.className = 'cm-peer-caret'
    s.style.borderLeftColor = this.color
    const l = document.createElement('span')
    l.className = 'cm-peer-name'
    l.textContent = this.name
    l.style.backgroundColor = this.color
    s.append(l)
    return s
  }
  ignoreEvent() { return true }
}

const peerField = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(deco, tr) {
    deco = deco.map(tr.changes)
    for (const e of tr.effects) {
      if (!e.is(setPeers)) continue
      const ranges = []
      for (const c of e.value) {
        if (c.to > c.from) ranges.push(Decoration.mark({ class: 'cm-peer-selection', attributes: { style: `background-color: ${c.bg}` } }).range(c.from, c.to))
        ranges.push(Decoration.widget({ widget: new CaretWidget(c.name, c.color), side: 1 }).range(c.head))
      }
      deco = Decoration.set(ranges, true)
    }
    return deco
  },
  provide: (f) => EditorView.decorations.from(f),
})

/** colorOf gives a user a stable colour, with alpha when given. */
export function colorOf(user: string, alpha = 1): string {
  let h = 2166136261
  for (let i = 0; i < user.length; i++) h = Math.imul(h ^ user.charCodeAt(i), 16777619)
  return `hsla(${(h >>> 0) % 360}, 70%, 42%, ${alpha})`
}

export class Binding {
  readonly view: EditorView
  private astral: boolean

  constructor(parent: HTMLElement, private session: Session, text: string, readOnly = false) {
    this.astral = hasAstral(text)
    const ext: Extension[] = [
      history(),
      drawSelection({ cursorBlinkRate: 0 }),
      keymap.of([...defaultKeymap, ...historyKeymap]),
      EditorView.lineWrapping,
      peerField,
      EditorState.readOnly.of(readOnly),
      EditorView.updateListener.of((u) => {
        for (const tr of u.transactions) if (tr.docChanged && !tr.annotation(remote)) this.localTransaction(tr)
        if (u.selectionSet || u.docChanged) {
          const sel = u.state.selection.main
          const d = u.state.doc
          this.session.setCursor(utf16ToCp(d, sel.anchor, this.astral), utf16ToCp(d, sel.head, this.astral))
        }
      }),
    ]
    this.view = new EditorView({ parent, state: EditorState.create({ doc: text, extensions: ext }) })
  }

  /** localTransaction turns a local CodeMirror change set into CRDT ops, change by change. */
  private localTransaction(tr: Transaction): void {
    const ops: Array<Uint8Array | null> = []
    const doc = this.session.doc
    tr.changes.iterChanges((fromA, toA, fromB, _toB, ins) => {
      const text = ins.toString()
      if (!this.astral && hasAstral(text)) this.astral = true
      // After the earlier changes of the set, the text before fromB is final.
      const pos = this.astral ? cpLen(tr.state.doc.sliceString(0, fromB)) : fromB
      if (toA > fromA) {
        const n = this.astral ? cpLen(tr.startState.doc.sliceString(fromA, toA)) : toA - fromA
        ops.push(doc.delete(pos, n))
      }
      // Large pastes go in pieces, so no encoded op nears the server's op size limit.
      let at = pos
      for (const part of chunks(text, 2000)) {
        ops.push(doc.insert(at, part))
        at += cpLen(part)
      }
    })
    this.session.local(ops)
  }

  /** applyRemote shows changes of other replicas (code points) without adding to undo history. */
  applyRemote(cs: Change[]): void {
    for (const [kind, index, text] of cs) {
      if (!this.astral && hasAstral(text)) this.astral = true
      const from = cpToUtf16(this.view.state.doc, index, this.astral)
      const changes = kind === 1 ? { from, insert: text } : { from, to: from + text.length }
      this.view.dispatch({ changes, annotations: [remote.of(true), Transaction.addToHistory.of(false)] })
    }
  }

  /** reset replaces the whole text (a snapshot from the server). */
  reset(text: string): void {
    this.astral = hasAstral(text)
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: text }, annotations: [remote.of(true), Transaction.addToHistory.of(false)] })
  }

  /** showPeers draws the other users' cursors from their identifiers. */
  showPeers(peers: Map<number, Peer>): void {
    const d = this.view.state.doc
    const cursors: Cursor[] = []
    for (const p of peers.values()) {
      p.lastAnchor = this.session.position(p.anchor, p.lastAnchor)
      p.lastHead = this.session.position(p.head, p.lastHead)
      const a = cpToUtf16(d, p.lastAnchor, this.astral)
      const h = cpToUtf16(d, p.lastHead, this.astral)
      cursors.push({ from: Math.min(a, h), to: Math.max(a, h), head: h, name: p.name, color: colorOf(p.user), bg: colorOf(p.user, 0.25) })
    }
    this.view.dispatch({ effects: setPeers.of(cursors) })
  }

  destroy(): void { this.view.destroy() }
}
