import { existsSync, readFileSync, readdirSync } from 'node:fs'
import t from 'tap'
import {
  type UciPackage,
  type UciSection,
  type UciValue,
  UciError,
  findUciSection,
  parseUci,
  uciAnonymousName,
  uciGet,
  uciSectionRef,
  uciSectionsOfType,
  writeUci,
} from '../../src/core/uci.js'

// Golden files in test/fixtures/uci: NAME.uci is the input; NAME.json the
// package parseUci must return (options as [name, value] pairs, in order), or
// NAME.err the error message. NAME.export is what OpenWrt's own `uci export
// NAME` printed for the input (see the README there): writeUci must print
// the same.
const FIXTURES = new URL('../fixtures/uci/', import.meta.url)
const fixture = (name: string) => readFileSync(new URL(name, FIXTURES), 'utf8')
const has = (name: string) => existsSync(new URL(name, FIXTURES))
const inputs = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.uci'))
  .map((f) => f.slice(0, -'.uci'.length))
  .sort()

interface PlainSection {
  type: string
  name: string | null
  index: number
  line?: number
  options: [string, UciValue][]
}
interface PlainPackage {
  name: string | null
  sections: PlainSection[]
}

function plain(pkg: UciPackage, withLines = true): PlainPackage {
  return {
    name: pkg.name,
    sections: pkg.sections.map((s) => ({
      type: s.type,
      name: s.name,
      index: s.index,
      ...(withLines ? { line: s.line } : {}),
      options: [...s.options],
    })),
  }
}

function parseError(text: string, file = 'test'): UciError {
  try {
    parseUci(text, file)
  } catch (e) {
    if (e instanceof UciError) return e
    throw e
  }
  throw new Error(`no error for ${JSON.stringify(text)}`)
}

const okInputs = inputs.filter((name) => !has(`${name}.err`))

t.test('golden files', async (t) => {
  t.ok(inputs.length >= 40, `${inputs.length} fixtures`)
  for (const name of inputs) {
    t.test(name, async (t) => {
      const text = fixture(`${name}.uci`)
      t.not(has(`${name}.json`), has(`${name}.err`), 'exactly one of .json and .err')
      if (has(`${name}.err`)) {
        const e = parseError(text, `${name}.uci`)
        t.equal(e.message, fixture(`${name}.err`).trimEnd())
        t.equal(e.file, `${name}.uci`)
        t.equal(e.message.startsWith(`${name}.uci:${e.line}: `), true)
        return
      }
      const pkg = parseUci(text, `${name}.uci`)
      t.same(plain(pkg), JSON.parse(fixture(`${name}.json`)))
      pkg.sections.forEach((s, i) => t.equal(s.index, i))
      if (has(`${name}.export`)) {
        t.equal(writeUci({ ...pkg, name }), fixture(`${name}.export`), 'same as uci export')
      }
    })
  }
})

t.test('every fixture that parses has a uci export golden', async (t) => {
  for (const name of okInputs) t.ok(has(`${name}.export`), name)
})

t.test('round trip: parse → write → parse for every golden file', async (t) => {
  for (const name of okInputs) {
    const pkg = parseUci(fixture(`${name}.uci`), name)
    const written = writeUci(pkg)
    const again = parseUci(written, name)
    t.same(plain(again, false), plain(pkg, false), name)
    t.equal(writeUci(again), written, `${name}: writing is stable`)
  }
})

t.test('the realistic /etc/config/ugate', async (t) => {
  const pkg = parseUci(fixture('ugate.uci'), '/etc/config/ugate')
  t.equal(uciGet(pkg, 'main'), 'ugate')
  t.equal(uciGet(pkg, 'main', 'log_level'), 'info')
  t.equal(uciSectionsOfType(pkg, 'listener').length, 3)
  t.equal(uciGet(pkg, '@listener[0]', 'listen'), '0.0.0.0:1080')
  t.same(uciGet(pkg, '@listener[0]', 'allow'), ['192.168.1.0/24', 'fd00::/8'])
  t.equal(uciGet(pkg, '@listener[-1]', 'name'), 'iperf')
  t.same(uciGet(pkg, '@rule[1]', 'domain'), ['netflix.com', 'nflxvideo.net'])
  t.equal(uciGet(pkg, 'vps', 'password'), `p@ss w0rd's "secret"`)
  t.same(uciGet(pkg, 'capture', 'interface'), ['br-lan'])
  t.equal(uciGet(pkg, 'capture', 'nope'), undefined)
  t.equal(uciGet(pkg, 'nope', 'enabled'), undefined)
  const http = uciSectionsOfType(pkg, 'listener')[1]
  t.equal(uciSectionRef(pkg, http), '@listener[1]')
  t.equal(uciSectionRef(pkg, findUciSection(pkg, 'capture') as UciSection), 'capture')
})

t.test('keywords: whole word or first letter only', async (t) => {
  const ok = parseUci("p x\nc s 'n'\no a 1\nl b 2\npackage y\nconfig s\noption a 1\nlist b 2\n", 'f')
  t.equal(ok.name, 'x', 'the first package line names the package')
  t.same(plain(ok, false).sections, [
    {
      type: 's',
      name: 'n',
      index: 0,
      options: [
        ['a', '1'],
        ['b', ['2']],
      ],
    },
    {
      type: 's',
      name: null,
      index: 1,
      options: [
        ['a', '1'],
        ['b', ['2']],
      ],
    },
  ])
  for (const word of ['conf', 'opt', 'pack', 'li', 'Config', 'OPTION', 'configs', 'cc', 'x']) {
    t.equal(parseError(`config s 'n'\n${word} a b\n`).message, `test:2: invalid command ${JSON.stringify(word)}`)
  }
  t.equal(parseError('config;\n').message, 'test:1: invalid command "config;"')
})

t.test('error messages name the token and the line', async (t) => {
  const cases: [string, string][] = [
    ["config s 'x'\n\toption a 'b' c\n", 'test:2: unexpected extra argument "c"'],
    ["config s 'x' \\\ny\n", 'test:2: unexpected extra argument "y"'],
    // The backslash joins an empty word; the next line is then read as a command.
    ["config s 'x' \\\n\t'y'\n", `test:2: invalid command "'y'"`],
    ['config s "x\n\ny', 'test:1: unterminated double-quoted string'],
    ["config s 'x'\n\n\toption a 'b\n\n", 'test:3: unterminated single-quoted string'],
    ["config s 'x'\noption\n", 'test:2: missing option name after "option"'],
    ['config', 'test:1: missing section type after "config"'],
    ['config ', 'test:1: missing section type after "config"'],
    ['package', 'test:1: missing package name after "package"'],
    ['c\r\n', 'test:1: missing section type after "c"'],
    ["option a 'b'\n", 'test:1: "option" before the first "config" line'],
    ["\n\nconfig 'a b'", 'test:3: invalid section type "a b": only printable ASCII without spaces is allowed'],
    ['config caf\u00e9', 'test:1: invalid section type "caf\u00e9": only printable ASCII without spaces is allowed'],
    ["config s 'a.b'", 'test:1: invalid section name "a.b": only A-Z a-z 0-9 _ are allowed'],
    ["config s 'x'\n list 'a b' c", 'test:2: invalid option name "a b": only A-Z a-z 0-9 _ are allowed'],
    ["config s 'x' ; \n", 'test:1: expected a command after ";"'],
    ["config s 'x'\nconfig t x\n", 'test:2: section "x" redefined with type "t" (type "s" on line 1)'],
    ['config s x\0', 'test:1: NUL character in file'],
  ]
  for (const [text, message] of cases) {
    const e = parseError(text)
    t.equal(e.message, message, JSON.stringify(text))
    t.equal(e.name, 'UciError')
    t.ok(e instanceof Error)
  }
  const e = parseError("config s 'x'\n\toption a 'b' c\n", '/etc/config/ugate')
  t.equal(e.file, '/etc/config/ugate')
  t.equal(e.line, 2)
  t.equal(e.detail, 'unexpected extra argument "c"')
})

t.test('values', async (t) => {
  const value = (text: string) => parseUci(`config s 'x'\n\toption v ${text}\n`, 'f').sections[0].options.get('v')
  t.equal(value(`'a'"b"c`), 'abc', 'adjacent pieces concatenate')
  t.equal(value(`"a\\"b\\\\c\\n"`), 'a"b\\cn', 'a backslash in double quotes keeps the next char')
  t.equal(value(`'a\\'`), 'a\\', 'a backslash in single quotes is literal')
  t.equal(value(`a\\ b`), 'a b', 'a backslash outside quotes keeps the next char')
  t.equal(value(`'it'\\''s'`), "it's")
  t.equal(value(`a#b`), 'a', '# outside quotes starts a comment, even mid-word')
  t.equal(value(`'a#b'`), 'a#b')
  t.equal(value(`'a\nb'`), 'a\nb', 'quoted strings span lines')
  t.equal(value(`"a\\\nb"`), 'ab', 'backslash-newline in double quotes joins lines')
  t.equal(value(`a\\\nb`), 'ab', 'trailing backslash continues the line')
  t.equal(value(`a\\\r\nb`), 'ab', 'also before CRLF')
  t.equal(value(`'a\r\nb'`), 'a\r\nb', 'a quoted CRLF stays (libuci keeps the bytes)')
  t.equal(value(`x\r`), 'x', 'CR ends an unquoted word')
  t.equal(value(`''`), undefined, "option v '' sets nothing")
  t.equal(value(`'\u00e9\u{1F600}'`), '\u00e9\u{1F600}', 'non-ASCII values pass through')
})

t.test('anonymous section names and lookups like the uci CLI', async (t) => {
  // Checked against `uci -X show` and `uci get` built from openwrt/uci.
  t.equal(uciAnonymousName('rule', 0), 'cfg0192bd')
  t.equal(uciAnonymousName('listener', 16), 'cfg11a28b')
  t.equal(uciAnonymousName('a.b-c', 17), 'cfg122986')
  t.equal(uciAnonymousName('x:y', 18), 'cfg13b950')
  const pkg = parseUci("config a 'n'\nconfig listener\n\toption p 1\nconfig listener\n\toption p 2\nconfig b\n", 'g')
  const get = (ref: string) => uciGet(pkg, ref, 'p') ?? uciGet(pkg, ref)
  t.equal(get('@listener[0]'), '1')
  t.equal(get('@listener[-1]'), '2')
  t.equal(get('@listener[-2]'), '1')
  t.equal(get('@listener[-3]'), undefined)
  t.equal(get('@listener[2]'), undefined)
  t.equal(get('@[1]'), '1')
  t.equal(get('@[-1]'), 'b')
  t.equal(get('@listener[]'), '1', 'an empty index is 0 (strtol)')
  t.equal(get('@listener[ 1]'), '2')
  t.equal(get('@listener[+1]'), '2')
  t.equal(get('n'), 'a')
  t.equal(get('cfg02a28b'), '1')
  t.equal(get('cfg03a28b'), '2')
  t.equal(get('nope'), undefined)
  for (const bad of ['@listener[x]', '@listener[1]x', '@list ener[0]', 'a-b', '@listener', '@[0', '']) {
    t.throws(() => findUciSection(pkg, bad), RangeError, bad)
  }
})

t.test('writeUci output', async (t) => {
  const pkg: UciPackage = {
    name: 'ugate',
    sections: [
      {
        type: 'ugate',
        name: 'main',
        index: 0,
        line: 0,
        options: new Map<string, UciValue>([
          ['enabled', '1'],
          ['empty', ''],
          ['quote', "it's"],
          ['bypass', ['10.0.0.0/8', '']],
          ['none', []],
        ]),
      },
      { type: 'listener', name: null, index: 1, line: 0, options: new Map() },
      { type: "we'ird#;", name: null, index: 2, line: 0, options: new Map() },
    ],
  }
  t.equal(
    writeUci(pkg),
    'package ugate\n\n' +
      "config ugate 'main'\n\toption enabled '1'\n\toption quote 'it'\\''s'\n" +
      "\tlist bypass '10.0.0.0/8'\n\tlist bypass ''\n\n" +
      'config listener\n\n' +
      "config 'we'\\''ird#;'\n\n",
  )
  t.equal(writeUci({ name: null, sections: [] }), '\n')
  const back = parseUci(writeUci(pkg), 'w')
  t.same([...back.sections[0].options.keys()], ['enabled', 'quote', 'bypass'], "'' and [] are left out")
  t.equal(back.sections[2].type, "we'ird#;")
})

t.test('writeUci refuses what would not read back the same', async (t) => {
  const section = (over: Partial<UciSection>): UciSection => ({
    type: 's',
    name: null,
    index: 0,
    line: 0,
    options: new Map(),
    ...over,
  })
  const bad: [string, UciPackage][] = [
    ['package name', { name: 'a.b', sections: [] }],
    ['empty type', { name: null, sections: [section({ type: '' })] }],
    ['type with space', { name: null, sections: [section({ type: 'a b' })] }],
    ['section name', { name: null, sections: [section({ name: 'a-b' })] }],
    ['empty section name', { name: null, sections: [section({ name: '' })] }],
    ['duplicate', { name: null, sections: [section({ name: 'x' }), section({ name: 'x' })] }],
    ['anonymous name taken', { name: null, sections: [section({ type: 'rule' }), section({ name: 'cfg0192bd' })] }],
    ['option name', { name: null, sections: [section({ options: new Map([['a.b', 'v']]) })] }],
    ['NUL', { name: null, sections: [section({ options: new Map([['a', 'v\0']]) })] }],
  ]
  for (const [what, pkg] of bad) t.throws(() => writeUci(pkg), RangeError, what)
  // A named section before an anonymous one with the same generated name is fine.
  const pkg: UciPackage = {
    name: null,
    sections: [section({ type: 'rule', name: 'cfg0292bd' }), section({ type: 'rule' })],
  }
  t.same(plain(parseUci(writeUci(pkg), 'x'), false).sections.length, 2)
})

// A small deterministic PRNG (mulberry32) for the property test.
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

t.test('property: write then parse gives the same package, for tricky values', async (t) => {
  const random = prng(20261125)
  const int = (n: number) => Math.floor(random() * n)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]
  const pieces = [
    "'",
    '"',
    '\\',
    '\n',
    '\r',
    '\r\n',
    '\t',
    ' ',
    '#',
    ';',
    '$',
    '`',
    "'\\''",
    '\\\n',
    '\\\r\n',
    'a',
    'Z',
    '0',
    '\u00e9',
    '\u{1F600}',
    '\v',
    '\f',
    'option',
    'config',
    '@',
    '[0]',
    "''",
    '""',
    '\x01',
  ]
  const value = () => Array.from({ length: int(6) }, () => pick(pieces)).join('')
  const nameChars = 'abcXYZ019_'
  const name = () => Array.from({ length: 1 + int(6) }, () => pick([...nameChars])).join('')
  const typeChars = [...nameChars, '-', '.', ':', '@', "'", '"', '\\', '#', ';', '!', '~', '[', ']']
  const type = () => Array.from({ length: 1 + int(5) }, () => pick(typeChars)).join('')
  let checked = 0
  for (let round = 0; round < 400; round++) {
    const pkg: UciPackage = { name: random() < 0.3 ? 'pkg-' + name() : null, sections: [] }
    const names = new Set<string>()
    for (let i = 0, n = int(5); i < n; i++) {
      const type_ = type()
      let sname: string | null = random() < 0.5 ? name() : null
      if (sname !== null && names.has(sname)) sname = null
      const index = pkg.sections.length
      names.add(sname ?? uciAnonymousName(type_, index))
      const options = new Map<string, UciValue>()
      for (let j = 0, m = int(6); j < m; j++) {
        const v = random() < 0.6 ? value() : Array.from({ length: 1 + int(3) }, value)
        if (v !== '') options.set(name(), v)
      }
      pkg.sections.push({ type: type_, name: sname, index, line: 0, options })
    }
    const text = writeUci(pkg)
    let back: UciPackage
    try {
      back = parseUci(text, 'gen')
    } catch (e) {
      t.fail(`${(e as Error).message}\n${text}`)
      continue
    }
    // One assertion per mismatch only, to keep the output short.
    if (JSON.stringify(plain(back, false)) !== JSON.stringify(plain(pkg, false))) {
      t.same(plain(back, false), plain(pkg, false), JSON.stringify(text))
    } else checked++
  }
  t.equal(checked, 400, 'all 400 generated packages read back the same')
})

t.test('property: random text parses or throws a UciError, and what parses round-trips', async (t) => {
  const random = prng(7)
  const pieces = [
    'config ',
    'c ',
    'option ',
    'o ',
    'list ',
    'l ',
    'package ',
    'p ',
    'rule ',
    'cfg0192bd ',
    'a',
    'b',
    'x ',
    '1',
    "'",
    '"',
    '\\',
    '\n',
    '\r\n',
    ' ',
    '\t',
    '\v',
    '#',
    ';',
    '-',
    '.',
    '\u00e9',
    '\n\tlist a ',
    '\nconfig s ',
  ]
  let parsed = 0
  let refused = 0
  for (let round = 0; round < 2000; round++) {
    let text = random() < 0.5 ? "config s 'n'\n" : ''
    for (let i = 0, n = Math.floor(random() * 16); i < n; i++) text += pieces[Math.floor(random() * pieces.length)]
    let pkg: UciPackage
    try {
      pkg = parseUci(text, 'random')
    } catch (e) {
      if (!(e instanceof UciError)) t.fail(`${String(e)} for ${JSON.stringify(text)}`)
      else if (!/^random:[1-9][0-9]*: ./.test(e.message)) t.fail(`bad message ${e.message}`)
      refused++
      continue
    }
    const back = parseUci(writeUci(pkg), 'again')
    if (JSON.stringify(plain(back, false)) !== JSON.stringify(plain(pkg, false))) {
      t.same(plain(back, false), plain(pkg, false), JSON.stringify(text))
    }
    parsed++
  }
  t.ok(parsed > 200 && refused > 200, `${parsed} parsed, ${refused} refused`)
})
