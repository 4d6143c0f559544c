// Lists value exports (functions, classes, constants) of src/ that no other file imports (src/, test/, bench/), so
// dead code cannot hide behind an `export`. Exit 1 when there is any.
// Uses the TypeScript compiler API only (no extra dependency).
import ts from 'typescript'
import { readdirSync, statSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'

const root = resolve(new URL('../..', import.meta.url).pathname)

function tsFiles(dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (name === 'node_modules' || name === 'fixtures') continue
    if (statSync(path).isDirectory()) out.push(...tsFiles(path))
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path)
  }
  return out
}

const files = ['src', 'test', 'bench'].flatMap((d) => tsFiles(join(root, d)))
const program = ts.createProgram(files, {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  noEmit: true,
  skipLibCheck: true,
  types: ['node'],
})
const checker = program.getTypeChecker()
const used = new Set() // declarations reached through an import or re-export elsewhere

function original(symbol) {
  return symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol
}
function markAll(moduleSpecifier) {
  const mod = checker.getSymbolAtLocation(moduleSpecifier)
  if (!mod) return
  for (const s of checker.getExportsOfModule(mod)) used.add(original(s))
}

for (const sf of program.getSourceFiles()) {
  if (sf.isDeclarationFile) continue
  ts.forEachChild(sf, function visit(node) {
    if (ts.isImportDeclaration(node) && node.importClause) {
      const { namedBindings, name } = node.importClause
      if (name) used.add(original(checker.getSymbolAtLocation(name)))
      if (namedBindings && ts.isNamespaceImport(namedBindings)) markAll(node.moduleSpecifier)
      else if (namedBindings)
        for (const el of namedBindings.elements) used.add(original(checker.getSymbolAtLocation(el.name)))
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      if (!node.exportClause) markAll(node.moduleSpecifier)
      else if (ts.isNamedExports(node.exportClause))
        for (const el of node.exportClause.elements) used.add(original(checker.getSymbolAtLocation(el.name)))
    } else if (ts.isImportTypeNode(node) && node.qualifier) {
      const s = checker.getSymbolAtLocation(node.qualifier)
      if (s) used.add(original(s))
    }
    ts.forEachChild(node, visit)
  })
}

const unused = []
for (const sf of program.getSourceFiles()) {
  const rel = relative(root, sf.fileName)
  if (sf.isDeclarationFile || !rel.startsWith('src/') || rel === 'src/main.ts') continue
  const mod = checker.getSymbolAtLocation(sf)
  if (!mod) continue
  for (const s of checker.getExportsOfModule(mod)) {
    if (used.has(original(s))) continue
    // Types may be exported because an exported signature names them.
    if (!(original(s).flags & ts.SymbolFlags.Value)) continue
    const decl = s.declarations?.[0]
    const line = decl ? sf.getLineAndCharacterOfPosition(decl.getStart()).line + 1 : 0
    unused.push(`${rel}:${line}: ${s.name}`)
  }
}
for (const u of unused) console.log(`unused export: ${u}`)
console.log(unused.length ? `${unused.length} unused exports` : 'no unused exports')
process.exit(unused.length ? 1 : 0)
