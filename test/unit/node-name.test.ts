// Node names (src/core/node-name.ts): which hosts name a mesh node, in the
// full form <NODEID>.<namespace>.<trust-domain> and the short form
// <NODEID>.<suffix>; the name sent on; the check against a node's SPIFFE id.
// A seeded fuzz compares the parser with an independent regex oracle.

import t from 'tap'
import {
  type NodeName,
  formatNodeName,
  nodeNameMismatch,
  nodeNameProblem,
  parseNodeName,
} from '../../src/core/node-name.js'
import { rng } from '../lib/rng.js'

const ID = 'NW4QXGYRBDI7NJX5TTQAS44KC52PSDW5MM5QTK3PBCFJXSXQDC6Q'
const FORMS = { trustDomain: 'mesh.test', suffix: 'mesh' }
const full = (node: string, namespace: string, trustDomain = 'mesh.test'): NodeName => ({
  node,
  namespace,
  trustDomain,
})
const short = (node: string): NodeName => ({ node, namespace: '', trustDomain: '' })

t.test('full and short forms, any case, a trailing dot', async (t) => {
  t.same(parseNodeName(`${ID}.home.mesh.test`, FORMS), full(ID, 'home'))
  t.same(parseNodeName(`${ID.toLowerCase()}.home.mesh.test`, FORMS), full(ID, 'home'), 'lower case (as DNS writes it)')
  t.same(parseNodeName(`${ID}.Home.MESH.test.`, FORMS), full(ID, 'home'), 'case-blind, trailing dot')
  t.same(parseNodeName(`${ID}.a.b.mesh.test`, FORMS), full(ID, 'a.b'), 'a namespace with a dot')
  t.same(parseNodeName(`${ID}.mesh`, FORMS), short(ID), 'the short form')
  t.same(parseNodeName(`${ID}.MESH`, FORMS), short(ID))
})

t.test('hosts that name no node', async (t) => {
  const cases: Array<[string, string]> = [
    ['example.com', 'a DNS name'],
    [`${ID}.home.other.test`, 'another trust domain'],
    [`${ID}.mesh.test`, 'no namespace'],
    [`${ID}.`, 'nothing after the id'],
    [ID, 'the id alone'],
    [`${ID.slice(0, 51)}.home.mesh.test`, '51 characters'],
    [`${ID}A.home.mesh.test`, '53 characters'],
    [`${ID.slice(0, 51)}B.home.mesh.test`, 'the last character is not A or Q (256 bits leave one)'],
    [`${ID.slice(0, 10)}1${ID.slice(11)}.home.mesh.test`, 'not base32 (1)'],
    [`x.${ID}.home.mesh.test`, 'the id is not the first label'],
    [`${ID}...mesh.test`, 'namespace ".."'],
    [`${ID}.ho me.mesh.test`, 'a space in the namespace'],
    [`${ID}.mesh.x`, 'a suffix that only starts like the short form'],
    [`${ID}.home.mesh.test`.padStart(254, 'a'), 'longer than 253'],
  ]
  for (const [host, why] of cases) t.equal(parseNodeName(host, FORMS), null, why)
  t.equal(
    parseNodeName(`${ID}.mesh`, { trustDomain: 'mesh.test', suffix: '' }),
    null,
    'no short form unless configured',
  )
  t.equal(
    parseNodeName(`${ID}.home.mesh.test`, { trustDomain: '', suffix: 'mesh' }),
    null,
    'no full form without a trust domain',
  )
})

t.test('the name sent on, and the check against the node SPIFFE id', async (t) => {
  t.equal(formatNodeName(ID, 'Home', 'mesh.test'), `${ID.toLowerCase()}.home.mesh.test`)
  const name = parseNodeName(formatNodeName(ID, 'home', 'mesh.test'), FORMS)!
  t.same(name, full(ID, 'home'), 'what is sent parses back to the same node')
  t.equal(nodeNameMismatch(name, 'spiffe://mesh.test/ns/home/sa/gate-a'), null)
  t.equal(nodeNameMismatch(name, 'spiffe://mesh.test/ns/Home/sa/gate-a'), null, 'namespace case-blind')
  t.equal(
    nodeNameMismatch(name, 'spiffe://mesh.test/ns/office/sa/gate-a'),
    `node ${ID} is spiffe://mesh.test/ns/office/sa/gate-a, not in namespace home of mesh.test`,
  )
  t.equal(
    nodeNameMismatch(name, 'spiffe://other.test/ns/home/sa/gate-a'),
    `node ${ID} is spiffe://other.test/ns/home/sa/gate-a, not in namespace home of mesh.test`,
  )
  t.equal(nodeNameMismatch(name, ''), null, 'an id not known: the node id alone names it')
  t.equal(nodeNameMismatch(short(ID), 'spiffe://mesh.test/ns/office/sa/x'), null, 'a short name has no namespace')
  t.match(nodeNameMismatch(name, 'not-an-id'), /has no SPIFFE id/)
})

t.test('whether a host is a name of a node with a given SPIFFE id (the SNI relay pairing)', async (t) => {
  const id = 'spiffe://mesh.test/ns/home/sa/gate-a'
  const lower = ID.toLowerCase()
  t.equal(nodeNameProblem(`${lower}.home.mesh.test`, ID, id, ''), null, 'its full name')
  t.equal(nodeNameProblem(`${ID}.HOME.mesh.test.`, ID, id, ''), null, 'any case, a trailing dot')
  t.equal(nodeNameProblem(`${lower}.mesh`, ID, id, 'mesh'), null, 'its short name, when configured')
  t.equal(nodeNameProblem(`${lower}.home.mesh.test`, ID, 'spiffe://mesh.test/ns/Home/sa/x', ''), null)
  const want = `is not a name of node ${ID} (${id}): ${lower}.home.mesh.test`
  t.equal(
    nodeNameProblem(`${lower}.office.mesh.test`, ID, id, 'mesh'),
    `"${lower}.office.mesh.test" ${want} or ${lower}.mesh`,
    'another namespace',
  )
  t.match(
    nodeNameProblem(`${lower}.home.other.test`, ID, id, 'mesh'),
    `${want} or ${lower}.mesh`,
    'another trust domain',
  )
  t.match(nodeNameProblem(`${lower}.mesh`, ID, id, ''), want, 'the short form, not configured')
  t.match(nodeNameProblem(`${lower}.home.mesh.test.x`, ID, id, ''), want, 'more after the name')
  t.match(nodeNameProblem(`${'B'.repeat(51)}A.home.mesh.test`, ID, id, ''), want, 'another node id')
  t.match(nodeNameProblem(`${lower}.home.mesh.test`, ID, 'not-an-id', ''), /has no SPIFFE id/)
})

// The oracle: the same grammar written as regular expressions.
function oracle(host: string, td: string, suffix: string): NodeName | null {
  if (host.length > 253) return null
  const m = /^([a-z2-7]{51}[aq])\.(.*)$/.exec(host.replace(/\.$/, '').toLowerCase())
  if (m === null) return null
  const node = m[1]!.toUpperCase()
  if (suffix !== '' && m[2] === suffix) return short(node)
  if (td === '' || !m[2]!.endsWith(`.${td}`)) return null
  const ns = m[2]!.slice(0, m[2]!.length - td.length - 1)
  if (!/^[a-z0-9._-]+$/.test(ns) || ns === '.' || ns === '..') return null
  return full(node, ns, td)
}

t.test('fuzz: 30000 seeded hosts against the oracle', async (t) => {
  const r = rng(0x0de1d)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
  const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  const NOISE = 'abcAZ0189.-_ ·\u00e9Q7'
  const id = () => {
    let s = ''
    for (let i = 0; i < 51; i++) s += B32[Math.floor(r() * 32)]
    return s + pick(['A', 'Q', 'A', 'Q', 'B'])
  }
  const mutate = (s: string): string => {
    const i = Math.floor(r() * (s.length + 1))
    switch (Math.floor(r() * 5)) {
      case 0:
        return s.slice(0, i) + pick([...NOISE]) + s.slice(i)
      case 1:
        return s.slice(0, i) + s.slice(i + 1)
      case 2:
        return s.slice(0, i) + s.slice(i, i + 1).toLowerCase() + s.slice(i + 1)
      case 3:
        return s + pick(['.', '.mesh', '.test', 'x'])
      default:
        return s
    }
  }
  let named = 0
  let wrong = 0
  for (let n = 0; n < 30000; n++) {
    const td = pick(['mesh.test', 'cluster.local', 't', ''])
    const suffix = pick(['mesh', 'n.example', ''])
    let host = pick([
      () => `${id()}.${pick(['home', 'a.b', 'x-y_z', '..', ''])}.${pick([td, 'mesh.test', 'other'])}`,
      () => `${id()}.${pick([suffix, 'mesh', 'n.example'])}`,
      () => id(),
      () => `${id()}.${'a'.repeat(Math.floor(r() * 250))}.${td}`,
    ])()
    for (let k = Math.floor(r() * 3); k > 0; k--) host = mutate(host)
    const got = parseNodeName(host, { trustDomain: td, suffix })
    const want = oracle(host, td, suffix)
    if (got !== null) named++
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      wrong++
      if (wrong <= 5) t.fail(`${JSON.stringify(host)} td=${td} suffix=${suffix}`, { got, want })
    }
  }
  t.equal(wrong, 0, 'parser and oracle agree on every host')
  t.ok(named > 3000 && named < 27000, `both outcomes are exercised (${named} named a node)`)
})
