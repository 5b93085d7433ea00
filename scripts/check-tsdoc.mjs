// Fails when an export of a published package has no TSDoc comment.
// Usage: node scripts/check-tsdoc.mjs [package folder ...] (default: every package under packages/).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const root = join(import.meta.dirname, '..');
const folders = process.argv.length > 2 ? process.argv.slice(2) : readdirSync(join(root, 'packages')).map((name) => join('packages', name));

let missing = 0;
for (const folder of folders) {
  const entry = join(root, folder, 'src', 'index.ts');
  const program = ts.createProgram([entry], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    customConditions: ['@msg/source'],
    noEmit: true,
    types: [],
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  const moduleSymbol = source && checker.getSymbolAtLocation(source);
  if (!moduleSymbol) throw new Error(`cannot read ${entry}`);
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const documented = (symbol.declarations ?? []).some((declaration) => ts.getJSDocCommentsAndTags(declaration).length > 0 || hasDocOnStatement(declaration));
    if (!documented) {
      missing++;
      const where = symbol.declarations?.[0];
      const file = where ? `${where.getSourceFile().fileName.slice(root.length + 1)}` : folder;
      console.log(`${folder}: export ${exported.name} has no TSDoc (${file})`);
    }
  }
}
if (missing > 0) {
  console.log(`${missing} undocumented export(s)`);
  process.exitCode = 1;
}

/** A `const x = ...` is documented on its variable statement. */
function hasDocOnStatement(declaration) {
  const statement = declaration.parent?.parent;
  return statement !== undefined && ts.isVariableStatement(statement) && ts.getJSDocCommentsAndTags(statement).length > 0;
}
