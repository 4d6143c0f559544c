import { createHash } from 'node:crypto'
import t from 'tap'
import {
  formatSpiffeId,
  identityPlan,
  parseNodeId,
  parseSpiffeId,
  spiffeIdProblem,
  spiffeTrustDomain,
  segmentProblem,
  trustDomainProblem,
  validityProblem,
} from '../../src/core/identity.js'
import { parseArgs } from '../../src/core/cli.js'
import { rng } from '../lib/rng.js'

t.test('SPIFFE ids', async (t) => {
  const id = { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'ugate' }
  t.equal(formatSpiffeId(id), 'spiffe://cluster.local/ns/default/sa/ugate')
  t.same(parseSpiffeId('spiffe://cluster.local/ns/default/sa/ugate'), { id })
  t.same(parseSpiffeId('spiffe://td_1.example-x/ns/My.NS/sa/s_a-1'), {
    id: { trustDomain: 'td_1.example-x', namespace: 'My.NS', serviceAccount: 's_a-1' },
  })
  const bad: Array<[string, RegExp]> = [
    ['http://cluster.local/ns/a/sa/b', /does not start with "spiffe:\/\/"/],
    ['spiffe:///ns/a/sa/b', /trust domain "" is empty/],
    ['spiffe://Cluster.local/ns/a/sa/b', /trust domain "Cluster.local" may only hold/],
    ['spiffe://td:8080/ns/a/sa/b', /trust domain "td:8080"/],
    ['spiffe://td/ns/a/sa', /no \/ns\/NAMESPACE\/sa\/SERVICE-ACCOUNT path/],
    ['spiffe://td/ns/a/sa/b/c', /no \/ns\/NAMESPACE/],
    ['spiffe://td/sa/a/ns/b', /no \/ns\/NAMESPACE/],
    ['spiffe://td/ns/../sa/b', /path segment ".." may not be/],
    ['spiffe://td/ns//sa/b', /path segment "" is empty/],
    ['spiffe://td/ns/a b/sa/b', /path segment "a b" may only hold/],
    [`spiffe://td/ns/a/sa/${'x'.repeat(2100)}`, /longer than 2048/],
  ]
  for (const [uri, re] of bad) {
    const r = parseSpiffeId(uri)
    t.ok('error' in r && re.test(r.error), uri.slice(0, 60), { got: r })
  }
  t.equal(trustDomainProblem('a'.repeat(256)), 'is longer than 255 characters')
  t.equal(segmentProblem('.'), 'may not be "." or ".."')
  t.equal(segmentProblem('ok'), null)
})

t.test('spiffeIdProblem, spiffeTrustDomain', async (t) => {
  t.equal(spiffeIdProblem('spiffe://td/ns/a/sa/b'), null)
  t.equal(spiffeIdProblem('td/ns/a/sa/b'), 'is not a SPIFFE id: does not start with "spiffe://"')
  t.equal(spiffeIdProblem(5), 'is not a SPIFFE id: is not a string')
  t.equal(spiffeTrustDomain('spiffe://td.test/ns/a/sa/b'), 'td.test')
  t.equal(spiffeTrustDomain('spiffe://td.test'), '')
  t.equal(spiffeTrustDomain('https://td.test/x'), '')
})

t.test('node ids: base32 of a SHA-256, any case in, upper case out', async (t) => {
  // Encoded here as native/identity.c does (RFC 4648 base32, no padding).
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  const base32 = (b: Buffer) => {
    const bits = Array.from(b, (x) => x.toString(2).padStart(8, '0')).join('')
    return bits.padEnd(Math.ceil(bits.length / 5) * 5, '0').replace(/.{5}/g, (g) => alphabet[parseInt(g, 2)]!)
  }
  for (let i = 0; i < 64; i++) {
    const id = base32(createHash('sha256').update(String(i)).digest())
    t.same(parseNodeId(id), { id }, `sha256("${i}") → ${id}`)
    t.same(parseNodeId(id.toLowerCase()), { id }, 'lower case accepted')
  }
  t.same(parseNodeId('A'.repeat(51) + 'B'), {
    error: 'is not a node id (base32: A-Z and 2-7, the last one A or Q)',
  })
  t.same(parseNodeId('A'.repeat(53)), { error: 'is not a node id (52 base32 characters, not 53)' })
  t.same(parseNodeId('0'.repeat(51) + 'A'), {
    error: 'is not a node id (base32: A-Z and 2-7, the last one A or Q)',
  })
  t.same(parseNodeId(null), { error: 'is not a string' })
})

t.test('a new identity: names and dates', async (t) => {
  const now = Date.UTC(2026, 0, 31, 12, 0, 0)
  const p = identityPlan({ trustDomain: 'mesh.lan', namespace: 'home', serviceAccount: 'router1' }, 30, now)
  t.same(p, {
    caSubject: 'O=mesh.lan,CN=ugate root CA',
    caNotBefore: '20260131115500',
    caNotAfter: '20360129120000',
    nodeSubject: 'O=mesh.lan,CN=router1.home',
    nodeNotBefore: '20260131115500',
    nodeNotAfter: '20260302120000',
    uri: 'spiffe://mesh.lan/ns/home/sa/router1',
  })
  // A node valid longer than ten years: the CA lasts as long as it does.
  const long = identityPlan({ trustDomain: 'a', namespace: 'b', serviceAccount: 'c' }, 5000, now)
  t.equal(long.caNotAfter, long.nodeNotAfter)
  t.equal(long.nodeNotAfter.slice(0, 4), '2039')
})

t.test('validity: the file and the date', async (t) => {
  const from = '2026-01-01T00:00:00Z'
  const to = '2026-12-31T23:59:59Z'
  t.equal(validityProblem('c.pem', from, to, Date.parse('2026-06-01T00:00:00Z')), null)
  t.equal(
    validityProblem('c.pem', from, to, Date.parse('2027-01-01T00:00:00Z')),
    'c.pem: certificate expired on 2026-12-31T23:59:59Z (now 2027-01-01T00:00:00Z)',
  )
  t.equal(
    validityProblem('c.pem', from, to, Date.parse('2025-12-31T23:00:00.500Z')),
    'c.pem: certificate is not valid before 2026-01-01T00:00:00Z (now 2025-12-31T23:00:00Z)',
  )
  t.match(validityProblem('c.pem', 'junk', to, 0), /c.pem: unreadable validity dates junk/)
})

t.test('identity command line', async (t) => {
  t.same(parseArgs(['identity', 'show']), { kind: 'identity-show', dir: '/etc/ugate/identity' })
  t.same(parseArgs(['identity', 'show', '--dir', '/x']), { kind: 'identity-show', dir: '/x' })
  t.same(
    parseArgs([
      'identity',
      'init',
      '--dir=/d',
      '--trust-domain',
      'td',
      '--namespace',
      'n',
      '--sa',
      's',
      '--days',
      '7',
      '--force',
    ]),
    {
      kind: 'identity-init',
      dir: '/d',
      id: { trustDomain: 'td', namespace: 'n', serviceAccount: 's' },
      days: 7,
      force: true,
    },
  )
  t.same(parseArgs(['identity', 'init']), {
    kind: 'identity-init',
    dir: '/etc/ugate/identity',
    id: { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'ugate' },
    days: 365,
    force: false,
  })
  t.same(parseArgs(['identity', '--help']), { kind: 'help' })
  const bad: Array<[string[], RegExp]> = [
    [['identity'], /needs init or show, got nothing/],
    [['identity', 'make'], /needs init or show, got "make"/],
    [['identity', 'init', '--trust-domain', 'Big.Domain'], /--trust-domain: "Big.Domain" may only hold/],
    [['identity', 'init', '--namespace', '..'], /--namespace: "\.\." may not be/],
    [['identity', 'init', '--sa', 'a/b'], /--sa: "a\/b" may only hold/],
    [['identity', 'init', '--days', '0'], /--days: "0" is not a whole number of days from 1 to 36500/],
    [['identity', 'init', '--days', '1.5'], /--days: "1.5"/],
    [['identity', 'show', '--force'], /unknown option "--force" for "ugate identity show"/],
  ]
  for (const [args, re] of bad) t.throws(() => parseArgs(args), { message: re }, args.join(' '))
})

t.test('SPIFFE parsing fuzz (fixed seed): an id or a reason, and ids round-trip', async (t) => {
  const next = rng(0x5eed12)
  const pieces = ['spiffe://', 'td', '/', 'ns', 'sa', 'x', '..', '.', '-', '_', 'Z', ' ', '%', ':', '//']
  let ids = 0
  for (let i = 0; i < 5000; i++) {
    // A valid id with 0-3 random edits: inserted pieces or deleted characters.
    let uri = 'spiffe://td.lan/ns/home/sa/router1'
    for (let k = Math.floor(next() * 4); k > 0; k--) {
      const at = Math.floor(next() * (uri.length + 1))
      const piece = pieces[Math.floor(next() * pieces.length)]!
      uri = next() < 0.5 ? uri.slice(0, at) + piece + uri.slice(at) : uri.slice(0, at) + uri.slice(at + 1)
    }
    const r = parseSpiffeId(uri)
    if ('id' in r) {
      ids++
      if (formatSpiffeId(r.id) !== uri) t.fail(`${uri} does not round-trip`)
    } else if (r.error === '') t.fail(`${uri}: no reason`)
  }
  t.ok(ids > 0 && ids < 5000, `both ids and refusals (${ids} ids)`)
})
