// Substring ("keyword") matching with an Aho–Corasick automaton: one pass
// over the host's characters finds every stored keyword it contains, so the
// cost depends on the host's length, not on the number of keywords.
//
// Keywords are ASCII (rules/compile.ts allows a-z 0-9 . _ -); a character >= 128
// cannot be part of one and resets the automaton to the root. After
// finish() the automaton is flat typed arrays: states with many transitions
// (the root, and the shallow states of a big keyword set) get a dense
// 128-entry row, the others a short sorted run of (character, next state),
// usually a single entry. A step is a few integer reads, with no Map and no
// allocation.
//
// Costs on QuickJS (x86): the automaton ~0.17 µs per host character,
// whatever the number of keywords; String.prototype.includes ~0.17 µs per
// keyword. So a few keywords (up to SMALL) are checked with includes, more
// with the automaton. (A RegExp of all keywords is no faster: QuickJS's
// backtracking engine tries the alternatives one by one at each position.)

import type { ListSink } from './cidr-tree.js'

/** Up to this many distinct keywords, includes() beats the automaton. */
const SMALL = 12
/** States with more transitions than this get a dense row. */
const DENSE = 4

export class KeywordMatcher {
  private readonly keywords: string[] = []
  private readonly ids: number[][] = [] // per keyword: sorted ids
  private readonly byText = new Map<string, number>()
  // automaton, built by finish()
  private denseOf = new Int32Array(1) // per state: offset of its dense row in `dense`, or -1
  private dense = new Int32Array(128) // rows of 128: next state + 1, 0 = no edge (root row first)
  private edgeStart = new Int32Array(1) // per state: first edge; edges of s are [edgeStart[s], edgeStart[s+1])
  private edgeChar = new Uint8Array(0)
  private edgeNext = new Int32Array(0)
  private fail = new Int32Array(1)
  private outStart = new Int32Array(1) // per state: keywords ending here (own + via fail links)
  private outKeyword = new Int32Array(0)
  private seen = new Int32Array(0) // per keyword: stamp of the last lookup that reported it
  private stamp = 0

  get size(): number {
    return this.keywords.length
  }

  /** Store id under keyword (lower case ASCII). Ids must come in ascending order. */
  insert(keyword: string, id: number): void {
    let k = this.byText.get(keyword)
    if (k === undefined) {
      k = this.keywords.length
      this.keywords.push(keyword)
      this.ids.push([])
      this.byText.set(keyword, k)
    }
    const list = this.ids[k]!
    if (list[list.length - 1] !== id) list.push(id)
  }

  finish(): void {
    // 1. the trie of keywords (build-time Maps, dropped at the end)
    const children: Array<Map<number, number>> = [new Map()]
    const own: number[][] = [[]]
    this.keywords.forEach((kw, k) => {
      let s = 0
      for (let i = 0; i < kw.length; i++) {
        const c = kw.charCodeAt(i)
        let t = children[s]!.get(c)
        if (t === undefined) {
          t = children.length
          children.push(new Map())
          own.push([])
          children[s]!.set(c, t)
        }
        s = t
      }
      own[s]!.push(k)
    })
    const states = children.length
    const goto = (s: number, c: number) => children[s]!.get(c)
    // 2. failure links and output sets, breadth first
    const fail = new Int32Array(states)
    const out: number[][] = own.map((o) => o.slice())
    const queue: number[] = [...children[0]!.values()]
    for (let qi = 0; qi < queue.length; qi++) {
      const s = queue[qi]!
      for (const [c, t] of children[s]!) {
        let f = fail[s]!
        let g = goto(f, c)
        while (g === undefined && f !== 0) {
          f = fail[f]!
          g = goto(f, c)
        }
        fail[t] = g ?? 0
        for (const k of out[fail[t]!]!) out[t]!.push(k)
        queue.push(t)
      }
    }
    // 3. flatten
    this.denseOf = new Int32Array(states).fill(-1)
    const denseStates = children.map((m, s) => (s === 0 || m.size > DENSE ? s : -1)).filter((s) => s >= 0)
    this.dense = new Int32Array(denseStates.length * 128)
    denseStates.forEach((s, row) => {
      this.denseOf[s] = row * 128
      for (const [c, t] of children[s]!) this.dense[row * 128 + c] = t + 1
    })
    let edges = 0
    for (const m of children) edges += m.size
    this.edgeStart = new Int32Array(states + 1)
    this.edgeChar = new Uint8Array(edges)
    this.edgeNext = new Int32Array(edges)
    let e = 0
    children.forEach((m, s) => {
      this.edgeStart[s] = e
      for (const c of [...m.keys()].sort((a, b) => a - b)) {
        this.edgeChar[e] = c
        this.edgeNext[e] = m.get(c)!
        e++
      }
    })
    this.edgeStart[states] = e
    this.fail = fail
    let outs = 0
    for (const o of out) outs += o.length
    this.outStart = new Int32Array(states + 1)
    this.outKeyword = new Int32Array(outs)
    let o = 0
    out.forEach((ks, s) => {
      this.outStart[s] = o
      for (const k of ks) this.outKeyword[o++] = k
    })
    this.outStart[states] = o
    this.seen = new Int32Array(this.keywords.length)
  }

  /** Hand the id list of every keyword contained in host to sink (each keyword once). */
  lookup(host: string, sink: ListSink): void {
    const n = this.keywords.length
    if (n === 0) return
    if (n <= SMALL) {
      for (let k = 0; k < n; k++) if (host.includes(this.keywords[k]!)) sink.take(this.ids[k]!)
      return
    }
    const denseOf = this.denseOf
    const dense = this.dense
    const edgeStart = this.edgeStart
    const edgeChar = this.edgeChar
    const edgeNext = this.edgeNext
    const fail = this.fail
    const outStart = this.outStart
    const stamp = (this.stamp = (this.stamp + 1) | 0)
    if (stamp === 0) this.seen.fill(-1)
    let s = 0
    for (let i = 0; i < host.length; i++) {
      const c = host.charCodeAt(i)
      if (c >= 128) {
        s = 0
        continue
      }
      // follow failure links until a state has an edge for c (the root always "has" one)
      for (;;) {
        const row = denseOf[s]!
        if (row >= 0) {
          const t = dense[row + c]!
          if (t !== 0 || s === 0) {
            s = t === 0 ? 0 : t - 1
            break
          }
          s = fail[s]!
          continue
        }
        let e = edgeStart[s]!
        const end = edgeStart[s + 1]!
        while (e < end && edgeChar[e]! < c) e++
        if (e < end && edgeChar[e] === c) {
          s = edgeNext[e]!
          break
        }
        s = fail[s]!
      }
      for (let j = outStart[s]!, end = outStart[s + 1]!; j < end; j++) {
        const k = this.outKeyword[j]!
        if (this.seen[k] !== stamp) {
          this.seen[k] = stamp
          sink.take(this.ids[k]!)
        }
      }
    }
  }
}
