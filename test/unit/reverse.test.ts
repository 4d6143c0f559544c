// Reverse tunnels, runtime-free: the public gate's registry, the listener's
// check, and the dialing gate's reconnect schedule.

import t from 'tap'
import { ReverseBackoff, type ReverseEntry, ReverseRegistry, reverseRefusal } from '../../src/core/reverse.js'

const A = 'spiffe://mesh.test/ns/home/sa/gate-a'
const B = 'spiffe://mesh.test/ns/home/sa/gate-b'
const NODE_A = 'A'.repeat(52)
const NODE_A2 = 'C'.repeat(52)
const NODE_B = 'B'.repeat(52)

const entry = (tunnel: number, identity: string, node: string, sinceMs = tunnel): ReverseEntry => ({
  tunnel,
  identity,
  node,
  listener: 'mesh',
  peer: `198.51.100.2:${40000 + tunnel}`,
  sinceMs,
})

t.test('registry: register, find by node and identity, drop', async (t) => {
  const r = new ReverseRegistry()
  t.equal(r.add(entry(1, A, NODE_A)), undefined, 'first registration replaces nothing')
  t.equal(r.add(entry(2, B, NODE_B)), undefined)
  t.equal(r.find(A, '')?.tunnel, 1, 'by SPIFFE id')
  t.equal(r.find('', NODE_B)?.tunnel, 2, 'by node id')
  t.equal(r.find(A, NODE_A)?.tunnel, 1, 'by both')
  t.equal(r.find(B, NODE_A), undefined, 'both given: both must match')
  t.equal(r.find('', ''), undefined, 'an upstream that names no gate never takes a reverse tunnel')
  t.equal(r.find('spiffe://mesh.test/ns/home/sa/nobody', ''), undefined)
  t.equal(r.drop(2)?.node, NODE_B, 'drop returns the entry')
  t.equal(r.drop(2), undefined, 'dropped once only')
  t.equal(r.find('', NODE_B), undefined, 'forgotten as soon as its tunnel is gone')
  t.same(
    r.list().map((e) => e.tunnel),
    [1],
  )
})

t.test('registry: the same node again replaces its older tunnel', async (t) => {
  const r = new ReverseRegistry()
  r.add(entry(1, A, NODE_A))
  t.equal(r.add(entry(5, A, NODE_A))?.tunnel, 1, 'the old entry comes back, to be closed')
  t.equal(r.find('', NODE_A)?.tunnel, 5)
  t.same(
    r.list().map((e) => e.tunnel),
    [5],
    'only the new one is listed',
  )
  t.equal(r.drop(1), undefined, "the replaced tunnel's close finds nothing to drop")
  t.equal(r.find('', NODE_A)?.tunnel, 5, '…and does not take the new one with it')
})

t.test('registry: two nodes with one SPIFFE id: by identity, the newest', async (t) => {
  const r = new ReverseRegistry()
  r.add(entry(1, A, NODE_A, 100))
  r.add(entry(2, A, NODE_A2, 200))
  t.equal(r.find(A, '')?.tunnel, 2, 'newest')
  t.equal(r.find(A, NODE_A)?.tunnel, 1, 'the node id picks one')
  r.drop(2)
  t.equal(r.find(A, '')?.tunnel, 1, 'the other one remains')
})

t.test('listener check: exact ids only, off when the list is empty', async (t) => {
  t.equal(reverseRefusal([A], A), null)
  t.equal(reverseRefusal([A], B), `${B} is not in its reverse list`)
  t.equal(reverseRefusal([], A), 'this listener allows no reverse tunnels')
  t.equal(reverseRefusal([A], ''), 'a peer without a SPIFFE id is not in its reverse list')
  t.equal(reverseRefusal(['spiffe://mesh.test/ns/home/sa/gate'], A), `${A} is not in its reverse list`, 'no prefixes')
})

t.test('backoff: doubles from retry to retryMax, jittered 50-100 %, starts again once up', async (t) => {
  const b = new ReverseBackoff(500, 4000)
  const full: number[] = []
  const low: number[] = []
  const first = b.failed(0.999999)
  t.equal(first.outage, true, 'the first failure begins an outage')
  full.push(first.delayMs)
  for (let i = 0; i < 6; i++) {
    const f = b.failed(0.999999)
    t.equal(f.outage, false, 'later failures of the same outage')
    full.push(f.delayMs)
  }
  t.same(full, [500, 1000, 2000, 4000, 4000, 4000, 4000], 'doubling, capped at retryMax')
  t.equal(b.failures, 7)
  b.connected()
  t.equal(b.up, true)
  t.equal(b.failures, 0, 'up: failures forgotten')
  const again = b.failed(0)
  t.same(again, { delayMs: 250, outage: true }, 'a tunnel that ended: an outage, from the first delay (jitter low end)')
  for (let i = 0; i < 20; i++) low.push(b.failed(0).delayMs)
  t.ok(
    low.every((d) => d >= 250 && d <= 2000),
    'never below half the first delay nor above half the cap at the low end',
  )
  for (let i = 0; i < 100; i++) {
    const d = b.failed(Math.random()).delayMs
    if (d < 2000 || d > 4000) t.fail(`capped delay ${d} outside 50-100 % of retryMax`)
  }
})
