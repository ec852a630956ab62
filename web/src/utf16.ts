// The edge between the editor's UTF-16 offsets and the CRDT's code points.
// Text without astral characters (no surrogate pairs) has equal offsets, so
// the common case costs one scan of the changed text, not of the document.

import type { Text } from '@codemirror/state'

/** cpLen is the number of code points of s. */
export function cpLen(s: string): number {
  let n = s.length
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) { n--; i++ }
    }
  }
  return n
}

/** hasAstral reports whether s has a surrogate pair. */
export function hasAstral(s: string): boolean {
  return /[\ud800-\udbff][\udc00-\udfff]/.test(s)
}

/** utf16ToCp converts the UTF-16 offset off of doc to a code-point position. */
export function utf16ToCp(doc: Text, off: number, astral: boolean): number {
  return astral ? cpLen(doc.sliceString(0, off)) : off
}

/** cpToUtf16 converts the code-point position cp of doc to a UTF-16 offset. */
export function cpToUtf16(doc: Text, cp: number, astral: boolean): number {
  if (!astral) return cp
  let off = 0
  let left = cp
  for (const it = doc.iter(); left > 0 && !it.next().done;) {
    const s = it.value
    const n = cpLen(s)
    if (n <= left) { off += s.length; left -= n; continue }
    for (let i = 0; left > 0; left--) {
      const c = s.charCodeAt(i)
      const w = c >= 0xd800 && c <= 0xdbff && i + 1 < s.length ? 2 : 1
      i += w
      off += w
    }
  }
  return off
}

/** cpSlice returns the UTF-16 length of the first n code points of s. */
export function utf16LenOf(s: string, n: number): number {
  let i = 0
  for (; n > 0 && i < s.length; n--) {
    const c = s.charCodeAt(i)
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < s.length ? 2 : 1
  }
  return i
}
