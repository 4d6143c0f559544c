// bench/rules.ts — routing engine benchmark (not a test; run it with bench/rules.sh).
//
// Compiles 10 000 generated rules (domain suffixes, exact names, keywords,
// IPv4/IPv6 CIDRs, ports, listeners, protocols, mixed conditions, shuffled
// so that every index holds early and late rules) and times route() for
// queries that hit an early rule, hit a late rule, or miss everything.
// Runs on Node and on QuickJS-ng (bench/rules.sh --qjs): it uses only
// performance.now() and a print function.

import { compileRules, route, type RouteQuery, type RuleSpec } from '../src/core/rules/index.js'

declare const print: ((...a: unknown[]) => void) | undefined
declare const memoryUsed: (() => number) | undefined // QuickJS runner: bytes after a GC
declare const process: { memoryUsage(): { heapUsed: number }; version: string } | undefined
declare const gc: (() => void) | undefined

const out = (s: string) => (typeof print === 'function' ? print(s) : console.log(s))
const RULES = Number((globalThis as { BENCH_RULES?: number }).BENCH_RULES ?? 10_000)
const SCALE = Number((globalThis as { BENCH_SCALE?: number }).BENCH_SCALE ?? 1) // fewer iterations on QuickJS

function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
const rand = rng(2024)
const int = (n: number) => Math.floor(rand() * n)
const pick = <T>(a: readonly T[]): T => a[int(a.length)]!
const word = (min: number, max: number) => {
  let s = ''
  const n = min + int(max - min + 1)
  for (let i = 0; i < n; i++) s += String.fromCharCode(97 + int(26))
  return s
}
const TLDS = ['com', 'net', 'org', 'io', 'de', 'cn', 'co.uk', 'ru', 'info', 'dev']
const domain = () => `${word(4, 10)}.${pick(TLDS)}`
const v4 = () => [1 + int(222), int(256), int(256), int(256)].join('.')
const v6 = () =>
  `2${int(0x1000).toString(16).padStart(3, '0')}:${int(0x10000).toString(16)}:${int(0x10000).toString(16)}::${int(0x10000).toString(16)}`
const REJECT = { type: 'reject' } as const
const UP = { type: 'upstream', name: 'vpn' } as const

type Kind =
  'suffix' | 'exact' | 'keyword' | 'cidr4' | 'cidr6' | 'suffix+port' | 'cidr+range' | 'src+listener' | 'port' | 'proto'

function makeRule(kind: Kind): RuleSpec {
  switch (kind) {
    case 'suffix':
      return { domainSuffix: Array.from({ length: 1 + int(3) }, domain), action: REJECT }
    case 'exact':
      return { domain: Array.from({ length: 1 + int(2) }, () => `${word(2, 6)}.${domain()}`), action: UP }
    case 'keyword':
      return { domainKeyword: [word(6, 9)], action: REJECT }
    case 'cidr4':
      return { dstCidr: [`${v4()}/${pick([16, 20, 24, 28, 32])}`], action: UP }
    case 'cidr6':
      return { dstCidr: [`${v6()}/${pick([32, 48, 64, 128])}`], action: UP }
    case 'suffix+port':
      return { domainSuffix: [domain()], dstPort: [pick([80, 443, 8443])], action: UP }
    case 'cidr+range':
      return { dstCidr: [`${v4()}/24`], dstPort: [[1000 + int(1000), 3000 + int(1000)]], action: REJECT }
    case 'src+listener':
      return { srcCidr: [`10.${int(256)}.${int(256)}.0/24`], listener: ['lan'], action: UP }
    case 'port':
      return { dstPort: [20000 + int(20000)], action: UP }
    case 'proto':
      return { listener: [`l${int(50)}`], proto: ['h2'], action: UP }
  }
}

// 10 000 rules in the proportions of a big real rule list, shuffled.
const MIX: Array<[Kind, number]> = [
  ['suffix', 0.3],
  ['exact', 0.2],
  ['keyword', 0.03],
  ['cidr4', 0.17],
  ['cidr6', 0.08],
  ['suffix+port', 0.08],
  ['cidr+range', 0.05],
  ['src+listener', 0.04],
  ['port', 0.03],
  ['proto', 0.02],
]
const kinds: Kind[] = []
for (const [k, share] of MIX) for (let i = 0; i < Math.round(share * RULES); i++) kinds.push(k)
while (kinds.length < RULES) kinds.push('suffix')
kinds.length = RULES
for (let i = kinds.length - 1; i > 0; i--) {
  const j = int(i + 1)
  ;[kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!]
}
const rules = kinds.map(makeRule)

// ---- compile ------------------------------------------------------------------------
const memBefore = heap()
let t0 = performance.now()
let compiled = compileRules(rules)
const compileMs = performance.now() - t0
const memAfter = heap()
// a few more compiles for a steadier figure
t0 = performance.now()
const compileRuns = SCALE < 1 ? 1 : 3
for (let i = 0; i < compileRuns; i++) compiled = compileRules(rules)
const compileAvgMs = (performance.now() - t0) / compileRuns

function heap(): number {
  if (typeof memoryUsed === 'function') return memoryUsed()
  if (typeof gc === 'function') gc()
  return typeof process !== 'undefined' ? process.memoryUsage().heapUsed : NaN
}

// ---- queries ----------------------------------------------------------------------
const base = { dstPort: 443, srcIp: '192.168.1.20', listener: 'redir' }
/** A query that the given rule matches (by construction). */
function queryFor(i: number): RouteQuery {
  const r = rules[i]!
  if (r.domainSuffix) return { ...base, host: `www.${r.domainSuffix[0]}`, dstPort: (r.dstPort?.[0] as number) ?? 443 }
  if (r.domain) return { ...base, host: r.domain[0] }
  if (r.domainKeyword) return { ...base, host: `x${r.domainKeyword[0]}y.example.net` }
  if (r.dstCidr) {
    const [net] = r.dstCidr[0]!.split('/')
    const port = Array.isArray(r.dstPort?.[0]) ? (r.dstPort[0] as [number, number])[0] : 443
    return { ...base, dstIp: net!, dstPort: port } // the network address is inside its prefix
  }
  if (r.srcCidr) return { ...base, srcIp: r.srcCidr[0]!.replace('.0/24', '.9'), listener: 'lan' }
  if (r.dstPort) return { ...base, dstPort: r.dstPort[0] as number }
  return { ...base, listener: r.listener![0]!, proto: 'h2' }
}

function pickQueries(from: number, to: number, want: (k: Kind) => boolean, n: number): RouteQuery[] {
  const qs: RouteQuery[] = []
  for (let i = from; i < to && qs.length < n; i++) {
    if (!want(kinds[i]!)) continue
    const q = queryFor(i)
    if (route(compiled, q).ruleIndex === i) qs.push(q) // exactly this rule wins
  }
  return qs
}
const isDomain = (k: Kind) => k === 'suffix' || k === 'exact' || k === 'suffix+port' || k === 'keyword'
const isAddr = (k: Kind) => k === 'cidr4' || k === 'cidr6' || k === 'cidr+range'
const N = 40
const early = Math.min(300, RULES)
const late = Math.max(0, RULES - 600)
const cases: Array<[string, RouteQuery[]]> = [
  ['hit early, by name', pickQueries(0, early, isDomain, N)],
  ['hit late, by name', pickQueries(late, RULES, isDomain, N)],
  ['hit early, by address', pickQueries(0, early, isAddr, N)],
  ['hit late, by address', pickQueries(late, RULES, isAddr, N)],
  ['hit late, keyword', pickQueries(0, RULES, (k) => k === 'keyword', 1000).slice(-N)],
  ['hit late, src+listener', pickQueries(late - 2000, RULES, (k) => k === 'src+listener', N)],
  [
    'miss, name + address',
    Array.from({ length: N }, () => ({
      ...base,
      host: `${word(3, 6)}.${word(5, 9)}.example`,
      dstIp: `198.18.${int(256)}.${int(256)}`,
    })).filter((q) => route(compiled, q).ruleIndex === -1),
  ],
  [
    'miss, IPv6 address only',
    Array.from({ length: N }, () => ({
      ...base,
      dstIp: `fd00:${int(0x10000).toString(16)}::${int(0x10000).toString(16)}`,
    })),
  ],
  [
    'miss, long name',
    Array.from({ length: N }, () => ({ ...base, host: `a.b.c.d.e.${word(20, 30)}.cdn.${word(8, 12)}.example` })),
  ],
]

function bench(qs: RouteQuery[]): number {
  if (qs.length === 0) return NaN
  const iters = Math.max(qs.length, Math.round(200_000 * SCALE))
  let sink = 0
  for (let i = 0; i < Math.min(iters, 20_000); i++) sink += route(compiled, qs[i % qs.length]!).ruleIndex // warm-up
  const start = performance.now()
  for (let i = 0; i < iters; i++) sink += route(compiled, qs[i % qs.length]!).ruleIndex
  const us = ((performance.now() - start) * 1000) / iters
  if (sink === 0.5) out('') // keep sink alive
  return us
}

const engine = typeof process !== 'undefined' ? `node ${process.version}` : 'QuickJS-ng'
const s = compiled.stats
out(`ugate routing bench — ${engine} — ${RULES} rules`)
out(
  `index sizes: ${s.domainNames} names, ${s.keywords} keywords, ${s.dstPrefixes} dst + ${s.srcPrefixes} src prefixes ` +
    `(${s.treeNodes} tree nodes), ${s.portValues} ports + ${s.portRanges} ranges, ${s.listenerNames} listeners, ${s.scanned} scanned`,
)
out(
  `compile: ${compileMs.toFixed(1)} ms first, ${compileAvgMs.toFixed(1)} ms average of ${compileRuns}` +
    (Number.isFinite(memAfter - memBefore) ? `; memory +${((memAfter - memBefore) / 1048576).toFixed(1)} MB` : ''),
)
out('')
out('| case | queries | matched rule (median) | µs/route |')
out('|---|---:|---:|---:|')
for (const [name, qs] of cases) {
  const idx = qs.map((q) => route(compiled, q).ruleIndex).sort((a, b) => a - b)
  const median = idx.length ? idx[Math.floor(idx.length / 2)]! : NaN
  out(`| ${name} | ${qs.length} | ${median} | ${bench(qs).toFixed(2)} |`)
}

// The same rule set with the keyword rules turned into suffix rules: what
// name lookups cost without the keyword scan (one step per host character).
{
  const noKeywords = rules.map((r) => (r.domainKeyword ? { domainSuffix: [domain()], action: r.action } : r))
  compiled = compileRules(noKeywords)
  out('')
  out('Without the keyword rules (same rules otherwise):')
  out('')
  out('| case | µs/route |')
  out('|---|---:|')
  for (const [name, qs] of cases) {
    if (name.includes('keyword') || !qs.some((q) => q.host !== undefined)) continue
    out(`| ${name} | ${bench(qs).toFixed(2)} |`)
  }
}
