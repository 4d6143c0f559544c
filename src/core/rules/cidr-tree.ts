// A path-compressed binary prefix tree (a PATRICIA-style trie) for one
// address family. Each stored prefix owns a sorted list of ids (rule
// indices); a lookup walks from the root towards the address and hands every
// list on the way (all prefixes that contain the address, shortest first) to
// a sink. Path compression keeps the tree at most 2 nodes per prefix, so
// 10 000 IPv6 prefixes cost ~20 000 nodes rather than ~1.3 million.
//
// After finish() the tree is flat typed arrays: a lookup reads integers only
// and allocates nothing. The id lists stay plain arrays: most hold one or two
// ids, and a small typed array costs several objects in QuickJS.

import { bitAt, commonPrefixLength, parseCidr, parseIpInto, type Cidr, type Words } from '../ip.js'

/** Receives the id lists found by a lookup (see CompiledRules). */
export interface ListSink {
  take(list: readonly number[]): void
}

interface BuildNode {
  words: Words // the prefix, host bits clear
  len: number
  index: number // position in the flat arrays (set by finish)
  ids: number[] | null
  child0: BuildNode | null
  child1: BuildNode | null
}

function newNode(words: Words, len: number): BuildNode {
  return { words, len, index: 0, ids: null, child0: null, child1: null }
}

export class CidrTree {
  readonly maxLen: number
  private root: BuildNode | null
  // flat form, filled by finish()
  private words = new Int32Array(0) // 4 per node
  private lens = new Uint8Array(0)
  private child0 = new Int32Array(0)
  private child1 = new Int32Array(0)
  private listOf = new Int32Array(0) // index into lists, or -1
  private lists: number[][] = []
  private nodeCount = 0
  private prefixCount = 0

  constructor(family: 4 | 6) {
    this.maxLen = family === 4 ? 32 : 128
    this.root = newNode([0, 0, 0, 0], 0)
  }

  /** Number of distinct prefixes stored. */
  get size(): number {
    return this.prefixCount
  }

  get nodes(): number {
    return this.nodeCount
  }

  /** Add id to prefix c (same family as the tree). Ids must be added in ascending order. */
  insert(c: Cidr, id: number): void {
    const root = this.root
    if (root === null) throw new Error('CidrTree: insert after finish')
    let node = root
    for (;;) {
      if (node.len === c.len) {
        this.addId(node, id)
        return
      }
      const bit = bitAt(c.words, node.len)
      const child = bit === 0 ? node.child0 : node.child1
      if (child === null) {
        const leaf = newNode(c.words, c.len)
        this.addId(leaf, id)
        if (bit === 0) node.child0 = leaf
        else node.child1 = leaf
        return
      }
      // child's prefix contains c: go down (inline; calls are what costs on QuickJS)
      let inside = child.len <= c.len
      for (let w = 0, rest = child.len; inside && rest > 0; w++, rest -= 32) {
        const mask = rest >= 32 ? -1 : ~(-1 >>> rest)
        if (((c.words[w]! ^ child.words[w]!) & mask) !== 0) inside = false
      }
      if (inside) {
        node = child
        continue
      }
      const common = commonPrefixLength(c.words, child.words, Math.min(c.len, child.len))
      // c and child part ways at bit `common`: put a node for their common prefix between.
      const midWords = [0, 0, 0, 0]
      for (let w = 0; w < 4; w++) {
        const keep = common - 32 * w
        midWords[w] = keep >= 32 ? c.words[w]! : keep <= 0 ? 0 : c.words[w]! & ~(-1 >>> keep)
      }
      const mid = newNode(midWords, common)
      if (bitAt(child.words, common) === 0) mid.child0 = child
      else mid.child1 = child
      if (bit === 0) node.child0 = mid
      else node.child1 = mid
      if (common === c.len) {
        this.addId(mid, id)
      } else {
        const leaf = newNode(c.words, c.len)
        this.addId(leaf, id)
        if (bitAt(c.words, common) === 0) mid.child0 = leaf
        else mid.child1 = leaf
      }
      return
    }
  }

  private addId(node: BuildNode, id: number): void {
    if (node.ids === null) {
      node.ids = []
      this.prefixCount++
    }
    if (node.ids[node.ids.length - 1] !== id) node.ids.push(id)
  }

  /** Freeze into flat arrays; insert() is no longer allowed. */
  finish(): void {
    const root = this.root
    if (root === null) return
    const order: BuildNode[] = []
    const stack: BuildNode[] = [root]
    while (stack.length > 0) {
      const n = stack.pop()!
      order.push(n)
      if (n.child1) stack.push(n.child1)
      if (n.child0) stack.push(n.child0)
    }
    const count = order.length
    for (let i = 0; i < count; i++) order[i]!.index = i
    const words = new Int32Array(count * 4)
    const lens = new Uint8Array(count)
    const child0 = new Int32Array(count)
    const child1 = new Int32Array(count)
    const listOf = new Int32Array(count)
    const lists = this.lists
    for (let i = 0; i < count; i++) {
      const n = order[i]!
      const nw = n.words
      words[i * 4] = nw[0]!
      words[i * 4 + 1] = nw[1]!
      words[i * 4 + 2] = nw[2]!
      words[i * 4 + 3] = nw[3]!
      lens[i] = n.len
      child0[i] = n.child0 !== null ? n.child0.index : -1
      child1[i] = n.child1 !== null ? n.child1.index : -1
      if (n.ids !== null) {
        listOf[i] = lists.length
        lists.push(n.ids)
      } else {
        listOf[i] = -1
      }
    }
    this.words = words
    this.lens = lens
    this.child0 = child0
    this.child1 = child1
    this.listOf = listOf
    this.nodeCount = count
    this.root = null
  }

  /**
   * Hand every list whose prefix contains addr to sink, shortest prefix
   * first. The walk follows addr's bits and compares the full prefix only at
   * nodes that carry a list: when a node without a list does not match, no
   * node below it matches either, and the next list node finds that out.
   */
  lookup(addr: Int32Array, sink: ListSink): void {
    if (this.nodeCount === 0) return
    const words = this.words
    const lens = this.lens
    const listOf = this.listOf
    const child0 = this.child0
    const child1 = this.child1
    const maxLen = this.maxLen
    const a0 = addr[0]!
    let n = 0
    while (n >= 0) {
      const len = lens[n]!
      const list = listOf[n]!
      if (list >= 0) {
        const base = n * 4
        if (maxLen === 32) {
          if (len > 0 && ((words[base]! ^ a0) & (len >= 32 ? -1 : ~(-1 >>> len))) !== 0) return
        } else {
          for (let w = 0, rest = len; rest > 0; w++, rest -= 32) {
            if (((words[base + w]! ^ addr[w]!) & (rest >= 32 ? -1 : ~(-1 >>> rest))) !== 0) return
          }
        }
        sink.take(this.lists[list]!)
      }
      if (len >= maxLen) return
      const word = len < 32 ? a0 : addr[len >>> 5]!
      n = ((word >>> (31 - (len & 31))) & 1) === 0 ? child0[n]! : child1[n]!
    }
  }

  /** Whether any stored prefix contains addr (for a rule's own large CIDR list). */
  contains(addr: Int32Array): boolean {
    containsProbe.hit = false
    this.lookup(addr, containsProbe)
    return containsProbe.hit
  }
}

const containsProbe = {
  hit: false,
  take(): void {
    this.hit = true
  },
}

/** Lists longer than this get a tree of their own. */
const SMALL_SET = 8

/**
 * A rule's own CIDR list for checking one condition: a linear scan for a few
 * prefixes, a CidrTree per family beyond SMALL_SET.
 */
export class CidrSet {
  private v4: number[] = [] // pairs: network, mask
  private v6: number[] = [] // 8 per prefix: 4 network words, 4 masks
  private tree4: CidrTree | null = null
  private tree6: CidrTree | null = null

  constructor(cidrs: Cidr[]) {
    const v4 = cidrs.filter((c) => c.family === 4)
    const v6 = cidrs.filter((c) => c.family === 6)
    if (v4.length > SMALL_SET) {
      this.tree4 = new CidrTree(4)
      for (const c of v4) this.tree4.insert(c, 0)
      this.tree4.finish()
    } else {
      for (const c of v4) this.v4.push(c.words[0]!, c.len >= 32 ? -1 : c.len === 0 ? 0 : ~(-1 >>> c.len))
    }
    if (v6.length > SMALL_SET) {
      this.tree6 = new CidrTree(6)
      for (const c of v6) this.tree6.insert(c, 0)
      this.tree6.finish()
    } else {
      for (const c of v6) {
        this.v6.push(c.words[0]!, c.words[1]!, c.words[2]!, c.words[3]!)
        for (let w = 0; w < 4; w++) {
          const bits = c.len - 32 * w
          this.v6.push(bits >= 32 ? -1 : bits <= 0 ? 0 : ~(-1 >>> bits))
        }
      }
    }
  }

  matches(family: 4 | 6, addr: Int32Array): boolean {
    if (family === 4) {
      if (this.tree4 !== null) return this.tree4.contains(addr)
      const a = this.v4
      const x = addr[0]!
      for (let i = 0; i < a.length; i += 2) if ((x & a[i + 1]!) === a[i]) return true
      return false
    }
    if (this.tree6 !== null) return this.tree6.contains(addr)
    const a = this.v6
    for (let i = 0; i < a.length; i += 8) {
      if (
        (addr[0]! & a[i + 4]!) === a[i] &&
        (addr[1]! & a[i + 5]!) === a[i + 1] &&
        (addr[2]! & a[i + 6]!) === a[i + 2] &&
        (addr[3]! & a[i + 7]!) === a[i + 3]
      ) {
        return true
      }
    }
    return false
  }
}

/**
 * A listener's `allow` list (validated CIDR texts) as a test of a peer's
 * address text: an IPv4-mapped IPv6 peer counts as IPv4, anything
 * unparsable is refused. Allocation-free per call.
 */
export function allowList(cidrs: readonly string[]): (addr: string) => boolean {
  const set = new CidrSet(cidrs.map((c) => parseCidr(c)!))
  const scratch = new Int32Array(4)
  return (addr) => {
    const family = parseIpInto(addr, scratch, true)
    return family !== 0 && set.matches(family, scratch)
  }
}
