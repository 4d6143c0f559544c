// A suffix trie over reversed domain labels: "www.example.com" is stored
// along com → example → www. Each node keeps two sorted id lists: `exact`
// (the name ends here) and `suffix` (this name and every name below it). A
// lookup walks the query's labels right to left, so it only ever stops at a
// label boundary: suffix "example.com" matches "example.com" and
// "a.example.com" but never "badexample.com". Cost: one Map lookup per
// label of the query, whatever the number of stored names.

import type { ListSink } from './cidr-tree.js'

interface TrieNode {
  children: Map<string, TrieNode> | null
  exact: number[] | null
  suffix: number[] | null
}

function newNode(): TrieNode {
  return { children: null, exact: null, suffix: null }
}

export class DomainTrie {
  private readonly root: TrieNode = newNode()
  private names = 0

  /** Number of stored (name, kind) entries. */
  get size(): number {
    return this.names
  }

  /**
   * Store id under a normalised name (lower case, no trailing dot, valid
   * labels: see normalizeDomain in rules.ts). Ids must come in ascending order.
   */
  insert(name: string, id: number, kind: 'exact' | 'suffix'): void {
    let node = this.root
    const labels = name.split('.')
    for (let i = labels.length - 1; i >= 0; i--) {
      const label = labels[i]!
      if (node.children === null) node.children = new Map()
      let next = node.children.get(label)
      if (next === undefined) {
        next = newNode()
        node.children.set(label, next)
      }
      node = next
    }
    let list = node[kind]
    if (list === null) {
      list = []
      node[kind] = list
      this.names++
    }
    if (list[list.length - 1] !== id) list.push(id)
  }

  /** Nothing to do (the lists are final as built); kept so all indexes share one life cycle. */
  finish(): void {}

  /**
   * Hand the lists that match host (normalised) to sink: the suffix lists of
   * every matching ancestor (shortest first), then the exact and suffix
   * lists of host itself. Call finish() first.
   */
  lookup(host: string, sink: ListSink): void {
    let node = this.root
    let end = host.length
    while (end > 0) {
      const children = node.children
      if (children === null) return
      const dot = host.lastIndexOf('.', end - 1)
      const next = children.get(host.slice(dot + 1, end))
      if (next === undefined) return
      node = next
      if (dot < 0) {
        if (node.exact !== null) sink.take(node.exact)
        if (node.suffix !== null) sink.take(node.suffix)
        return
      }
      if (node.suffix !== null) sink.take(node.suffix)
      end = dot
    }
  }

  /** Whether host matches any stored name (for a rule's own long list). */
  matches(host: string): boolean {
    probe.hit = false
    this.lookup(host, probe)
    return probe.hit
  }
}

const probe = {
  hit: false,
  take(): void {
    this.hit = true
  },
}
