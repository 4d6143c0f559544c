import { createHash, generateKeyPairSync } from 'node:crypto'
import t from 'tap'
import {
  formatSpiffeId,
  identityPlan,
  nodeId,
  parseSpiffeId,
  segmentProblem,
  trustDomainProblem,
  validityProblem,
} from '../../src/core/identity.js'
import { parseArgs } from '../../src/core/cli.js'
import { rng } from '../lib/rng.js'

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest())

/** A reference base32 (RFC 4648, no padding) written differently: via a bit string. */
function refBase32(b: Uint8Array): string {
  const bits = Array.from(b, (x) => x.toString(2).padStart(8, '0')).join('')
  const padded = bits.padEnd(Math.ceil(bits.length / 5) * 5, '0')
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  return padded.replace(/.{5}/g, (g) => alphabet[parseInt(g, 2)]!)
}

/** The uncompressed point of a fresh P-256 key, from Node's own encoding. */
function p256Point(): Uint8Array {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwk = publicKey.export({ format: 'jwk' })
  return new Uint8Array([4, ...Buffer.from(jwk.x!, 'base64url'), ...Buffer.from(jwk.y!, 'base64url')])
}

t.test('node id: base32 of SHA-256 of the uncompressed point, 52 characters', async (t) => {
  for (let i = 0; i < 20; i++) {
    const pub = p256Point()
    const id = nodeId(pub, sha256)
    t.equal(id, refBase32(createHash('sha256').update(pub).digest()))
    t.match(id, /^[A-Z2-7]{52}$/)
  }
  // RFC 4648 section 10 vectors, through a hash that returns its input.
  const same = (b: Uint8Array): Uint8Array => b
  const vectors: Array<[string, string]> = [
    ['', ''],
    ['f', 'MY'],
    ['fo', 'MZXQ'],
    ['foo', 'MZXW6'],
    ['foob', 'MZXW6YQ'],
    ['fooba', 'MZXW6YTB'],
    ['foobar', 'MZXW6YTBOI'],
  ]
  // nodeId wants a key: a 65-byte point whose "hash" is the vector.
  for (const [text, want] of vectors) {
    const point = new Uint8Array(65)
    point[0] = 4
    t.equal(
      nodeId(point, () => same(new TextEncoder().encode(text))),
      want,
      `base32(${JSON.stringify(text)})`,
    )
  }
  t.throws(() => nodeId(new Uint8Array(33).fill(2), sha256), {
    message: /not an uncompressed P-256 public key \(33 bytes\)/,
  })
  t.throws(() => nodeId(new Uint8Array(65), sha256), { message: /not an uncompressed/ })
})

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
