// uci config files (/etc/config/*): a parser that accepts exactly what
// OpenWrt's libuci accepts when it loads a file (uci_load → uci_import in
// its default strict mode, openwrt/uci file.c), and a writer that produces
// `uci export` output (file.c: uci_export_package).
//
// libuci parses in place in a C line buffer: quotes and backslashes are
// squeezed out by copying characters down, NUL bytes end strings, and
// `uci_getln` appends the next line of the file at the current position
// (for quoted strings that span lines and for a trailing backslash). Some of
// its edge cases follow from that buffer handling (e.g. what a `;` right
// after an unquoted word does), so the parser below keeps the same model: a
// buffer of characters, a read position and a write position, with the
// same steps as file.c. On purpose it differs only in what it reports:
// - errors name the bad word and the line where that word (or an
//   unterminated quote) starts; libuci gives the number of lines read so far;
// - a NUL character is an error (libuci's reader drops the rest of its line);
// - the first `package` line names the package (uci_load checks and ignores it).
// The writer quotes a type only where libuci's bare type would not read back.

import { show } from './errors.js'

export type UciValue = string | string[]

export interface UciSection {
  type: string
  /** null = anonymous section (`config <type>` without a name). */
  name: string | null
  /** Position in the package's section list (file order). */
  index: number
  /** A string option, or a list (`list` lines, in order). */
  options: Map<string, UciValue>
  /** 1-based line of the `config` line that created the section. */
  line: number
}

export interface UciPackage {
  /** From the first `package` line, or null; libuci ignores the line when loading a file. */
  name: string | null
  sections: UciSection[]
}

/** A uci file that libuci would refuse to load; message is `file:line: detail`. */
export class UciError extends Error {
  readonly file: string
  readonly line: number
  readonly detail: string
  constructor(file: string, line: number, detail: string) {
    super(`${file}:${line}: ${detail}`)
    this.name = 'UciError'
    this.file = file
    this.line = line
    this.detail = detail
  }
}

// ---------------------------------------------------------------------------
// Character classes (C locale, as libuci runs in).

/** The NUL that ends a C string in the buffer model. */
const EOS = '\0'

/** isspace() in the C locale. */
function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r'
}

function isAlnum(code: number): boolean {
  return (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122)
}

/**
 * util.c uci_validate_str: names (sections, options) are [A-Za-z0-9_],
 * package names also allow `-`, types any printable ASCII except space.
 */
function validateStr(s: string, kind: 'name' | 'package' | 'type'): boolean {
  if (s === '') return false
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i)
    if (isAlnum(code) || code === 95 /* _ */) continue
    if (code === 45 /* - */ && kind === 'package') continue
    if (kind !== 'type' || code < 33 || code > 126) return false
  }
  return true
}

/** A valid section or option name: `[A-Za-z0-9_]+`. */
function isUciName(s: string): boolean {
  return validateStr(s, 'name')
}

/** A valid section type: printable ASCII (33..126), at least one character. */
function isUciType(s: string): boolean {
  return validateStr(s, 'type')
}

/** A valid package name: `[A-Za-z0-9_-]+`. */
function isUciPackageName(s: string): boolean {
  return validateStr(s, 'package')
}

const NAME_RULE: Record<'name' | 'package', string> = {
  name: 'only A-Z a-z 0-9 _ are allowed',
  package: 'only A-Z a-z 0-9 _ - are allowed',
}

/**
 * The name libuci gives an anonymous section when it creates it
 * (list.c: uci_fixup_section): `cfg`, the package's section count including
 * this one as %02x, and a djb hash of the type (the section has no options
 * yet) as %04x. `uci show -X` prints it; a later `config <type> '<it>'`
 * merges into that section, and the uci CLI accepts it as a section name.
 */
export function uciAnonymousName(type: string, index: number): string {
  let hash = 5381
  for (let i = 0; i < type.length; i++) hash = (Math.imul(hash, 33) + type.charCodeAt(i)) >>> 0
  hash &= 0x7fffffff
  return `cfg${(index + 1).toString(16).padStart(2, '0')}${(hash % 0x10000).toString(16).padStart(4, '0')}`
}

// ---------------------------------------------------------------------------
// Parser

type Keyword = 'package' | 'config' | 'option' | 'list'

/** file.c uci_parse_line: each keyword or its first letter, nothing else. */
const KEYWORDS: Record<string, Keyword> = {
  p: 'package',
  package: 'package',
  c: 'config',
  config: 'config',
  o: 'option',
  option: 'option',
  l: 'list',
  list: 'list',
}

/** The argument a keyword needs, for "missing ..." messages. */
const NEEDS: Record<Keyword, string> = {
  package: 'package name',
  config: 'section type',
  option: 'option name',
  list: 'option name',
}

function keywordOf(word: string): Keyword | undefined {
  return Object.hasOwn(KEYWORDS, word) ? KEYWORDS[word] : undefined
}

class Parser {
  /** Physical lines, each with its '\n' (the last one may lack it). */
  private readonly lines: string[]
  /** Index of the next physical line to read. */
  private nextLine = 0
  /** The line buffer; reading past its end gives EOS. */
  private buf: string[] = []
  /** The physical line (1-based) each buffer character came from; addc moves it along. */
  private lineOf: number[] = []
  /** Read position. */
  private pos = 0
  /** Write position of the string being parsed (always <= pos). */
  private dst = 0

  private readonly pkg: UciPackage = { name: null, sections: [] }
  /** libuci's name of each section: its own, or the generated one if anonymous. */
  private readonly names: string[] = []
  private section: UciSection | null = null

  constructor(
    text: string,
    private readonly file: string,
  ) {
    const nul = text.indexOf(EOS)
    if (nul >= 0) {
      // libuci's fgets-based reader silently drops the rest of such a line.
      throw new UciError(file, lineNumberAt(text, nul), 'NUL character in file')
    }
    this.lines = text.split('\n').map((l) => l + '\n')
    const last = this.lines.length - 1
    this.lines[last] = this.lines[last].slice(0, -1)
    if (this.lines[last] === '') this.lines.pop()
  }

  parse(): UciPackage {
    // file.c uci_import: one logical line at a time.
    while (this.nextLine < this.lines.length) {
      this.pos = 0
      this.getln(0)
      if (this.ch(0) !== EOS) this.parseLine()
    }
    return this.pkg
  }

  // --- buffer primitives ----------------------------------------------------

  private ch(i: number): string {
    return i < this.buf.length ? this.buf[i] : EOS
  }

  /** Store a character; EOS at or past the end is already there. */
  private put(i: number, c: string): void {
    if (i < this.buf.length) this.buf[i] = c
  }

  /** The C string starting at i. */
  private str(i: number): string {
    let end = i
    while (this.ch(end) !== EOS) end++
    return this.buf.slice(i, end).join('')
  }

  /** uci_getln: cut the buffer at `offset` and append the next line of the file. */
  private getln(offset: number): void {
    this.buf.length = offset
    this.lineOf.length = offset
    if (this.nextLine >= this.lines.length) return
    const line = this.lines[this.nextLine++]
    for (let i = 0; i < line.length; i++) {
      this.buf.push(line[i])
      this.lineOf.push(this.nextLine)
    }
  }

  private lineAt(i: number): number {
    if (this.lineOf.length === 0) return Math.max(this.nextLine, 1)
    return this.lineOf[Math.min(i, this.lineOf.length - 1)]
  }

  /** Throw for the word at buffer index `at` (its first character's line). */
  private fail(at: number, detail: string): never {
    this.failOnLine(this.lineAt(at), detail)
  }

  private failOnLine(line: number, detail: string): never {
    throw new UciError(this.file, line, detail)
  }

  private skipWhitespace(): void {
    while (this.ch(this.pos) !== EOS && isSpace(this.ch(this.pos))) this.pos++
  }

  /** Copy the character at the read position (and its line) to the write position. */
  private addc(): void {
    this.lineOf[this.dst] = this.lineOf[this.pos]
    this.buf[this.dst++] = this.buf[this.pos++]
  }

  // --- strings (file.c parse_str and friends) --------------------------------

  /**
   * At a backslash: skip it. Before the end of the line it joins the next
   * line (returns false); otherwise the next character is taken literally.
   */
  private parseBackslash(): boolean {
    this.pos++
    const c = this.ch(this.pos)
    if (c === EOS || c === '\n' || (c === '\r' && this.ch(this.pos + 1) === '\n' && this.ch(this.pos + 2) === EOS)) {
      this.getln(this.pos)
      return false
    }
    return true
  }

  private parseDoubleQuote(): void {
    const line = this.lineAt(this.pos++)
    for (;;) {
      const c = this.ch(this.pos)
      if (c === '"') {
        this.pos++
        return
      }
      if (c === EOS) {
        this.getln(this.pos)
        if (this.ch(this.pos) === EOS) this.failOnLine(line, 'unterminated double-quoted string')
        continue
      }
      if (c === '\\' && !this.parseBackslash()) continue
      this.addc()
    }
  }

  private parseSingleQuote(): void {
    const line = this.lineAt(this.pos++)
    for (;;) {
      const c = this.ch(this.pos)
      if (c === "'") {
        this.pos++
        return
      }
      if (c === EOS) {
        this.getln(this.pos)
        if (this.ch(this.pos) === EOS) this.failOnLine(line, 'unterminated single-quoted string')
        continue
      }
      this.addc()
    }
  }

  /**
   * One word: quoted and unquoted pieces up to whitespace, `#` (comment to
   * the end of the line) or `;`. The result is written over the input from
   * `dst` on and ended with EOS.
   */
  private parseStr(): void {
    let skipEnd = true
    do {
      const c = this.ch(this.pos)
      if (c === "'") this.parseSingleQuote()
      else if (c === '"') this.parseDoubleQuote()
      else if (c === '#') {
        this.put(this.pos, EOS)
        break
      } else if (c === EOS) break
      else if (c === ';') {
        skipEnd = false
        break
      } else if (c === '\\') {
        if (this.parseBackslash()) this.addc()
      } else this.addc()
    } while (this.ch(this.pos) !== EOS && !isSpace(this.ch(this.pos)))
    if (this.ch(this.pos) !== EOS && skipEnd) this.pos++
    // NB: when nothing was squeezed out, this overwrites a `;` right after
    // the word, which drops the rest of the line (libuci does the same).
    this.put(this.dst, EOS)
  }

  /**
   * file.c next_arg: the next argument, as the buffer index where it starts.
   * A `;` on its own ends the command: an empty argument.
   */
  private nextArg(): number {
    this.skipWhitespace()
    const start = this.pos
    this.dst = this.pos
    if (this.ch(this.pos) === ';') {
      this.put(this.pos, EOS)
      this.pos++
    } else {
      this.parseStr()
    }
    return start
  }

  private requiredArg(kw: string, keyword: Keyword, at: number): number {
    const arg = this.nextArg()
    if (this.ch(arg) === EOS) this.fail(at, `missing ${NEEDS[keyword]} after ${show(kw)}`)
    return arg
  }

  private checkName(arg: number, kind: 'name' | 'package', what: string): void {
    const s = this.str(arg)
    if (s !== '' && !validateStr(s, kind)) this.fail(arg, `invalid ${what} ${show(s)}: ${NAME_RULE[kind]}`)
  }

  /** file.c assert_eol (strict mode): nothing but a comment may follow. */
  private assertEol(): void {
    this.skipWhitespace()
    const arg = this.nextArg()
    if (this.ch(arg) !== EOS) this.fail(arg, `unexpected extra argument ${show(this.str(arg))}`)
  }

  // --- commands --------------------------------------------------------------

  /** strtok(" \t") at the read position: the index of the next word, or -1. */
  private strtok(): number {
    let i = this.pos
    while (this.ch(i) === ' ' || this.ch(i) === '\t') i++
    if (this.ch(i) === EOS) return -1
    const start = i
    while (this.ch(i) !== EOS && this.ch(i) !== ' ' && this.ch(i) !== '\t') i++
    this.put(i, EOS)
    return start
  }

  /** file.c uci_parse_line: commands up to the end of the line, split by `;`. */
  private parseLine(): void {
    this.skipWhitespace()
    for (;;) {
      const at = this.strtok()
      if (at < 0) return
      const word = this.str(at)
      if (word[0] === '#') return
      const keyword = keywordOf(word)
      if (keyword === undefined) {
        // e.g. "config" alone on a line: libuci reads the word with its '\n'.
        const bare = word.replace(/[\r\n\v\f]+$/, '')
        const bareKeyword = keywordOf(bare)
        if (bareKeyword !== undefined) this.fail(at, `missing ${NEEDS[bareKeyword]} after ${show(bare)}`)
        // Only after a `;`: libuci reads the end of the line as a command.
        if (bare === '') this.fail(at, 'expected a command after ";"')
        this.fail(at, `invalid command ${show(bare)}`)
      }
      if ((keyword === 'option' || keyword === 'list') && this.section === null) {
        this.fail(at, `${show(word)} before the first "config" line`)
      }
      // Step over the keyword and the NUL that strtok put after it.
      const step = this.str(this.pos).length + 1
      if (this.pos + step > this.buf.length) this.fail(at, `missing ${NEEDS[keyword]} after ${show(word)}`)
      this.pos += step
      if (keyword === 'package') this.parsePackage(word, at)
      else if (keyword === 'config') this.parseConfig(word, at)
      else this.parseOption(word, at, keyword)
    }
  }

  /** `package <name>`: checked, then ignored like uci_load does; the first name is kept. */
  private parsePackage(word: string, at: number): void {
    const arg = this.requiredArg(word, 'package', at)
    this.checkName(arg, 'package', 'package name')
    this.assertEol()
    if (this.pkg.name === null) this.pkg.name = this.str(arg)
  }

  /** file.c uci_parse_config. */
  private parseConfig(word: string, at: number): void {
    const typeArg = this.requiredArg(word, 'config', at)
    const rawType = this.str(typeArg)
    if (!validateStr(rawType, 'type')) {
      this.fail(typeArg, `invalid section type ${show(rawType)}: only printable ASCII without spaces is allowed`)
    }
    const nameArg = this.nextArg()
    this.checkName(nameArg, 'name', 'section name')
    this.assertEol()
    const type = this.str(typeArg)
    const name = this.str(nameArg)

    if (name !== '') {
      // list.c uci_set on an existing section: options merge into it. In
      // strict mode a different type is an error.
      const i = this.names.indexOf(name)
      if (i >= 0) {
        const old = this.pkg.sections[i]
        if (old.type !== type) {
          this.fail(
            nameArg,
            `section ${show(name)} redefined with type ${show(type)} (type ${show(old.type)} on line ${old.line})`,
          )
        }
        this.section = old
        return
      }
    }
    const section: UciSection = {
      type,
      name: name === '' ? null : name,
      index: this.pkg.sections.length,
      options: new Map(),
      line: this.lineAt(at),
    }
    this.pkg.sections.push(section)
    this.names.push(name === '' ? uciAnonymousName(type, section.index) : name)
    this.section = section
  }

  /** file.c uci_parse_option → list.c uci_set / uci_add_list. */
  private parseOption(word: string, at: number, keyword: 'option' | 'list'): void {
    const nameArg = this.requiredArg(word, keyword, at)
    this.checkName(nameArg, 'name', 'option name')
    const valueArg = this.nextArg()
    this.assertEol()
    const name = this.str(nameArg)
    const value = this.str(valueArg)
    const options = (this.section as UciSection).options
    const old = options.get(name)
    if (keyword === 'list') {
      // A string option becomes a list that starts with the old value.
      if (old === undefined) options.set(name, [value])
      else if (typeof old === 'string') options.set(name, [old, value])
      else old.push(value)
    } else if (value !== '') {
      // An option replaces a string or a list in place (Map keeps the order).
      options.set(name, value)
    }
    // `option x ''` does nothing: uci_set with an empty value deletes only
    // after a complete lookup, which the parser does not do.
  }
}

function lineNumberAt(text: string, index: number): number {
  let line = 1
  for (let i = text.indexOf('\n'); i >= 0 && i < index; i = text.indexOf('\n', i + 1)) line++
  return line
}

/**
 * Parse the text of a uci file. `file` only names it in errors. Throws a
 * UciError at the first thing libuci would refuse (strict mode).
 */
export function parseUci(text: string, file: string): UciPackage {
  return new Parser(text, file).parse()
}

// ---------------------------------------------------------------------------
// Writer

/** Type characters that need quotes (libuci writes types bare and gets these wrong). */
const TYPE_NEEDS_QUOTES = /['"\\#;]/

function quote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`
}

/**
 * Check that writing pkg and reading it back gives the same package:
 * valid names and types, no NUL, and no named section that a reader would
 * merge into an earlier one.
 */
function checkWritable(pkg: UciPackage): void {
  if (pkg.name !== null && !isUciPackageName(pkg.name)) {
    throw new RangeError(`uci: invalid package name ${show(pkg.name)}`)
  }
  const seen = new Set<string>()
  pkg.sections.forEach((s, i) => {
    const where = s.name ?? `@${s.type}[${i}]`
    if (!isUciType(s.type)) throw new RangeError(`uci: invalid section type ${show(s.type)}`)
    if (s.name !== null) {
      if (!isUciName(s.name)) throw new RangeError(`uci: invalid section name ${show(s.name)}`)
      if (seen.has(s.name)) throw new RangeError(`uci: duplicate section name ${show(s.name)}`)
    }
    seen.add(s.name ?? uciAnonymousName(s.type, i))
    for (const [name, value] of s.options) {
      if (!isUciName(name)) throw new RangeError(`uci: ${where}: invalid option name ${show(name)}`)
      for (const v of typeof value === 'string' ? [value] : value) {
        if (v.includes(EOS)) throw new RangeError(`uci: ${where}.${name}: NUL character in value`)
      }
    }
  })
}

/**
 * The package in `uci export` format: a `package` line when it has a name,
 * then each section after an empty line, options tab-indented with values in
 * single quotes (`'` written as `'\''`). parseUci reads it back to the same
 * package. An option set to '' or [] is left out: uci has no such option
 * (`option x ''` does not create one). Throws a RangeError for names that
 * uci would not read back (see checkWritable).
 */
export function writeUci(pkg: UciPackage): string {
  checkWritable(pkg)
  let out = pkg.name !== null ? `package ${pkg.name}\n` : ''
  for (const s of pkg.sections) {
    out += `\nconfig ${TYPE_NEEDS_QUOTES.test(s.type) ? quote(s.type) : s.type}`
    if (s.name !== null) out += ` '${s.name}'`
    out += '\n'
    for (const [name, value] of s.options) {
      if (typeof value === 'string') {
        if (value !== '') out += `\toption ${name} ${quote(value)}\n`
      } else {
        for (const item of value) out += `\tlist ${name} ${quote(item)}\n`
      }
    }
  }
  return out + '\n'
}

// ---------------------------------------------------------------------------
// Lookups, addressed like the uci CLI (list.c uci_lookup_ptr)

/** Sections of one type, in file order. */
export function uciSectionsOfType(pkg: UciPackage, type: string): UciSection[] {
  return pkg.sections.filter((s) => s.type === type)
}

/** strtol(…, 10) that must use the whole string, as uci_lookup_ext_section does. */
function parseIndex(s: string): number | undefined {
  if (s === '') return 0
  const m = /^[ \t\n\v\f\r]*([+-]?[0-9]+)$/.exec(s)
  return m === null ? undefined : Number(m[1])
}

/**
 * Find a section the way `uci get pkg.<ref>` does:
 * - a name (`main`; for an anonymous section its generated `cfgXXXXXX` name);
 * - `@type[n]`: the n-th section of that type, `@type[-1]` the last one,
 *   `@[n]` the n-th section of any type.
 * Returns undefined when there is no such section; throws a RangeError for a
 * reference that is neither (uci: "Invalid argument").
 */
export function findUciSection(pkg: UciPackage, ref: string): UciSection | undefined {
  if (isUciName(ref)) {
    return pkg.sections.find((s, i) => (s.name ?? uciAnonymousName(s.type, i)) === ref)
  }
  const m = /^@([^[]*)\[([^\]]*)\]$/.exec(ref)
  const index = m === null ? undefined : parseIndex(m[2])
  if (m === null || index === undefined || (m[1] !== '' && !isUciType(m[1]))) {
    throw new RangeError(`invalid uci section reference ${show(ref)}`)
  }
  const candidates = m[1] === '' ? pkg.sections : uciSectionsOfType(pkg, m[1])
  return candidates[index < 0 ? index + candidates.length : index]
}

/**
 * `uci get`: the option's value (a list as an array), or the section's type
 * when option is omitted; undefined when the section or option is missing.
 */
export function uciGet(pkg: UciPackage, section: string, option?: string): UciValue | undefined {
  const s = findUciSection(pkg, section)
  if (s === undefined) return undefined
  if (option === undefined) return s.type
  return s.options.get(option)
}

/** How `uci show` names a section: its name, or `@type[n]` if anonymous. */
export function uciSectionRef(pkg: UciPackage, section: UciSection): string {
  if (section.name !== null) return section.name
  return `@${section.type}[${uciSectionsOfType(pkg, section.type).indexOf(section)}]`
}
