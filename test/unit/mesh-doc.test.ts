// docs/mesh.md's setups (issue 13: a VPS and home routers behind NAT) and
// roles (issue 12: egress sidecar, ingress and egress gateway, ingress
// sidecar; and a forward listener into the mesh) are configs a reader copies: each JSON block must validate, each
// uci block must parse, and the uci shown as "the same" must give the same
// Config as its JSON.

import t from 'tap'
import { readFileSync } from 'node:fs'
import { type Config, validateConfig } from '../../src/core/config.js'
import { configFromUci } from '../../src/core/uci-config.js'

const DOC = new URL('../../docs/mesh.md', import.meta.url)

/** A node id for the placeholders `<A>` (as `ugate identity show` prints it) and `<a>` (in a name). */
const NODE = 'NW4QXGYRBDI7NJX5TTQAS44KC52PSDW5MM5QTK3PBCFJXSXQDC6Q'
const fill = (text: string) => text.replaceAll('<A>', NODE).replaceAll('<a>', NODE.toLowerCase())

interface Block {
  section: string
  line: number
  lang: string
  text: string
}

function blocks(md: string): Block[] {
  const out: Block[] = []
  let section = ''
  let open: Block | null = null
  md.split('\n').forEach((l, i) => {
    if (open === null && /^#{2,4} /.test(l)) section = l.replace(/^#+ /, '')
    if (!l.startsWith('```')) {
      if (open !== null) open.text += l + '\n'
      return
    }
    if (open === null) open = { section, line: i + 1, lang: l.slice(3), text: '' }
    else {
      out.push(open)
      open = null
    }
  })
  return out
}

/** A uci block's parts, one per gate ("# VPS", "# home A" ...). */
function uciParts(text: string): Array<{ name: string; text: string }> {
  const parts: Array<{ name: string; text: string }> = []
  for (const l of text.split('\n')) {
    if (/^# /.test(l)) parts.push({ name: l.slice(2), text: '' })
    else if (parts.length > 0) parts[parts.length - 1]!.text += l + '\n'
  }
  return parts
}

const md = readFileSync(DOC, 'utf8')
const setups = ['Setup: a VPS and a home router', 'Setup: two homes and a VPS']

t.test('every setup: its JSON configs validate and its uci gives the same Config', async (t) => {
  const seen = new Set<string>()
  const all = blocks(md)
  for (const b of all) {
    if (!setups.includes(b.section) || b.lang !== '' || !/^config /m.test(b.text)) continue
    seen.add(b.section)
    // The heading is used twice (relay over SNI, reverse tunnels): told apart by line.
    const key = `${b.section} @${b.line}`
    const parts = uciParts(b.text)
    // The JSON configs just before this uci block, one per part in the same order.
    const mine = all
      .filter((x) => x.section === b.section && x.lang === 'json' && x.line < b.line && x.text.includes('"listeners"'))
      .slice(-parts.length)
    t.equal(parts.length, mine.length, `${key}: a JSON block for each uci part`)
    const mesh = /^config mesh[^\n]*\n(\t[^\n]*\n)*/m.exec(parts[0]!.text)?.[0] ?? ''
    parts.forEach((p, i) => {
      const j = mine[i]!
      let fromJson: Config | undefined
      t.doesNotThrow(() => (fromJson = validateConfig(JSON.parse(fill(j.text)))), `${key}: ${p.name}: JSON validates`)
      // "the same mesh section": a part without one takes the first part's.
      const text = /^config mesh/m.test(p.text) ? p.text : mesh + '\n' + p.text
      let fromUci: Config | undefined
      t.doesNotThrow(() => (fromUci = configFromUci(fill(text), 'mesh.md')), `${key}: ${p.name}: uci parses`)
      if (fromJson === undefined || fromUci === undefined) return
      // The JSON names each setting; uci adds nothing the JSON has not (identity files, names of rules).
      t.same(comparable(fromUci), comparable(fromJson), `${key}: ${p.name}: uci and JSON are the same config`)
    })
  }
  t.same([...seen].sort(), [...setups].sort(), 'both setups were found in docs/mesh.md')
})

t.test('every role: its JSON config validates', async (t) => {
  const roles = blocks(md).filter((b) => b.section === 'Roles' && b.lang === 'json')
  t.equal(roles.length, 5, 'one config for each of the four roles, and a forward through an hbone upstream')
  for (const b of roles) t.doesNotThrow(() => validateConfig(JSON.parse(b.text)), `Roles @${b.line}: JSON validates`)
})

/** The parts of a Config the setups show; rule names differ (uci names sections, JSON numbers rules). */
function comparable(c: Config) {
  return {
    mesh: c.mesh,
    // uci lists listeners in the order of its sections; the order does not matter.
    listeners: [...c.listeners].sort((a, b) => a.name.localeCompare(b.name)),
    upstreams: c.upstreams,
    reverse: c.reverse,
    sniRelay: c.sniRelay,
    rules: c.rules.map((r) => ({ ...r, name: '' })),
  }
}
