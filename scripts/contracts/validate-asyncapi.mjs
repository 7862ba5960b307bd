// Validates an AsyncAPI document with the official parser (@asyncapi/parser, pinned in
// package.json beside this file), as scripts/check-contracts.sh does for docs/asyncapi.yaml.
//   node scripts/contracts/validate-asyncapi.mjs FILE
// Prints every diagnostic (error, warning, info, hint) with its rule code, JSON path and line,
// then a summary of the document. Exits 1 when the parser reports an error (severity 0), when
// the document is not AsyncAPI 3.x, or when it $refs anything remote (http/https): the
// contract must be self-contained, and this check never reaches off the machine.
import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Parser, fromFile } from '@asyncapi/parser';

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate-asyncapi.mjs FILE');
  process.exit(2);
}
const source = resolve(file);
if (!existsSync(source)) {
  console.error(`[asyncapi] FAIL ${file}: no such file`);
  process.exit(1);
}

// Remote references are recorded and refused instead of fetched. (A resolver that throws would
// fall through to the parser's own http reader, so this one answers with a placeholder.)
const remote = [];
const refuse = (schema) => ({
  schema,
  order: 1,
  read: (uri) => {
    remote.push(uri.toString());
    return '{}';
  },
});
const parser = new Parser({
  __unstable: { resolver: { resolvers: [refuse('http'), refuse('https')] } },
});

const parserVersion = createRequire(import.meta.url)('@asyncapi/parser/package.json').version;
const SEVERITY = ['error', 'warning', 'info', 'hint'];
const { document, diagnostics } = await fromFile(parser, source).parse();

let errors = 0;
for (const d of diagnostics) {
  if (d.severity === 0) errors += 1;
  const where = d.path && d.path.length ? d.path.join('.') : '(document)';
  const line = d.range ? `:${d.range.start.line + 1}:${d.range.start.character + 1}` : '';
  console.log(`  ${SEVERITY[d.severity] ?? d.severity} ${d.code} at ${where} (${file}${line}): ${d.message}`);
}
const counts = SEVERITY.map((s, i) => `${diagnostics.filter((d) => d.severity === i).length} ${s}s`).join(', ');
const problems = [];
if (errors > 0 || !document) problems.push(`${errors} error(s)${document ? '' : ', no document produced'}`);
for (const uri of remote) problems.push(`remote $ref refused: ${uri}`);

if (document) {
  const version = document.version();
  if (!/^3\./.test(version)) problems.push(`asyncapi ${version}, want 3.x`);
  const messages = document.allMessages();
  const names = messages.all().map((m) => m.id() || m.name()).filter(Boolean);
  console.log(
    `  asyncapi ${version}, "${document.info().title()}" ${document.info().version()}: ` +
      `${document.allServers().length} server(s), ${document.allChannels().length} channel(s), ` +
      `${document.allOperations().length} operation(s), ${messages.length} message(s)` +
      (names.length ? ` [${names.join(', ')}]` : ''),
  );
}
if (problems.length) {
  console.log(`[asyncapi] FAIL ${file} (@asyncapi/parser ${parserVersion}; ${counts}): ${problems.join('; ')}`);
  process.exit(1);
}
console.log(`[asyncapi] ok   ${file} is valid AsyncAPI (@asyncapi/parser ${parserVersion}; ${counts})`);
