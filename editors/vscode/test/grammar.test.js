// Tokenizes examples/payment_latency.ops with the extension's TextMate grammar (through
// vscode-textmate and the Oniguruma WebAssembly build, as VS Code does) and checks the
// scopes of a few tokens. Run with `npm test`.
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const GRAMMAR = path.join(__dirname, '..', 'syntaxes', 'ops.tmLanguage.json');
const EXAMPLE = path.join(__dirname, '..', '..', '..', 'examples', 'payment_latency.ops');
const WASM = path.join(
  path.dirname(require.resolve('vscode-oniguruma/package.json')),
  'release',
  'onig.wasm',
);

async function loadGrammar() {
  const wasm = fs.readFileSync(WASM);
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async (scopeName) => {
      if (scopeName !== 'source.ops') return null;
      return vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR, 'utf8'), GRAMMAR);
    },
  });
  const grammar = await registry.loadGrammar('source.ops');
  if (!grammar) throw new Error(`could not load the grammar from ${GRAMMAR}`);
  return grammar;
}

/** Every token of the file: { line, text, scopes } with 1-based line numbers. */
function tokenize(grammar, source) {
  const tokens = [];
  let state = vsctm.INITIAL;
  source.split(/\r?\n/).forEach((line, index) => {
    const result = grammar.tokenizeLine(line, state);
    for (const token of result.tokens) {
      tokens.push({
        line: index + 1,
        text: line.slice(token.startIndex, token.endIndex),
        scopes: token.scopes,
      });
    }
    state = result.ruleStack;
  });
  return tokens;
}

let failures = 0;
let passes = 0;

function check(description, fn) {
  try {
    fn();
    passes += 1;
    console.log(`ok   ${description}`);
  } catch (error) {
    failures += 1;
    console.error(`FAIL ${description}\n     ${error.message.split('\n').join('\n     ')}`);
  }
}

function show(token) {
  return `line ${token.line} ${JSON.stringify(token.text)}: ${token.scopes.join(' ')}`;
}

/** Asserts that the first token (on `line`, if given) whose text is `text` has `scope`. */
function expectScope(tokens, text, scope, line) {
  const candidates = tokens.filter((t) => t.text.trim() === text && (line === undefined || t.line === line));
  assert.ok(candidates.length > 0, `no token ${JSON.stringify(text)}${line ? ` on line ${line}` : ''}`);
  const token = candidates[0];
  assert.ok(token.scopes.includes(scope), `expected ${scope}, got ${show(token)}`);
}

function lineOf(source, needle) {
  const index = source.split(/\r?\n/).findIndex((l) => l.includes(needle));
  assert.ok(index >= 0, `the example no longer contains ${JSON.stringify(needle)}`);
  return index + 1;
}

async function main() {
  const grammar = await loadGrammar();
  const source = fs.readFileSync(EXAMPLE, 'utf8');
  const tokens = tokenize(grammar, source);

  check('`rule` is keyword.control.ops', () => {
    expectScope(tokens, 'rule', 'keyword.control.ops');
  });

  check('the rule name is entity.name.function.ops', () => {
    expectScope(tokens, 'payment_latency', 'entity.name.function.ops');
  });

  check('`500ms` is constant.numeric.duration.ops', () => {
    expectScope(tokens, '500ms', 'constant.numeric.duration.ops');
  });

  check('`10m` is constant.numeric.duration.ops', () => {
    expectScope(tokens, '10m', 'constant.numeric.duration.ops');
  });

  check('`10%` and `100%` are constant.numeric.percent.ops', () => {
    expectScope(tokens, '10%', 'constant.numeric.percent.ops');
    expectScope(tokens, '100%', 'constant.numeric.percent.ops');
  });

  check('`{service}` in "http://{service}/health" is meta.interpolation.ops', () => {
    const line = lineOf(source, '"http://{service}/health"');
    const onLine = tokens.filter((t) => t.line === line);
    const open = onLine.findIndex((t) => t.text === '{');
    assert.ok(open >= 0, `no "{" token on line ${line}`);
    const [brace, name, close] = onLine.slice(open, open + 3);
    assert.deepStrictEqual(
      [brace.text, name.text, close.text],
      ['{', 'service', '}'],
      `unexpected tokens: ${onLine.map((t) => JSON.stringify(t.text)).join(' ')}`,
    );
    for (const token of [brace, name, close]) {
      assert.ok(token.scopes.includes('meta.interpolation.ops'), `expected meta.interpolation.ops, got ${show(token)}`);
      assert.ok(token.scopes.includes('string.quoted.double.ops'), `expected it inside the string, got ${show(token)}`);
    }
    assert.ok(brace.scopes.includes('punctuation.section.interpolation.begin.ops'), show(brace));
    assert.ok(close.scopes.includes('punctuation.section.interpolation.end.ops'), show(close));
    assert.ok(name.scopes.includes('variable.other.ops'), `the interpolated name: ${show(name)}`);
    const text = onLine.find((t) => t.text.includes('/health'));
    assert.ok(text && !text.scopes.includes('meta.interpolation.ops'), `"/health" is not interpolated: ${text && show(text)}`);
    const comment = onLine.find((t) => t.scopes.some((s) => s.startsWith('comment.')));
    assert.ok(!comment, `"//" in a string is not a comment: ${comment && show(comment)}`);
  });

  check('a nested string inside an interpolation closes and the outer string goes on', () => {
    const line = lineOf(source, '{scale.summary ?? "not scaled"}');
    const onLine = tokens.filter((t) => t.line === line);
    const nested = onLine.find((t) => t.text === 'not scaled');
    assert.ok(nested, 'no "not scaled" token');
    assert.ok(nested.scopes.includes('meta.interpolation.ops'), show(nested));
    const after = onLine.find((t) => t.text.includes('; downstream: '));
    assert.ok(after, 'no "; downstream: " token');
    assert.ok(after.scopes.includes('string.quoted.double.ops') && !after.scopes.includes('meta.interpolation.ops'), show(after));
    const deps = onLine.find((t) => t.text === 'deps');
    assert.ok(deps && deps.scopes.includes('meta.interpolation.ops'), deps && show(deps));
  });

  check('`///` lines are comment.line.documentation.ops', () => {
    const docLines = source.split(/\r?\n/).map((l, i) => [l, i + 1]).filter(([l]) => /^\s*\/\/\/(?!\/)/.test(l));
    assert.ok(docLines.length >= 2, 'the example has fewer than two `///` lines');
    for (const [text, line] of docLines) {
      const first = tokens.find((t) => t.line === line && t.text.trim() !== '');
      assert.ok(first.scopes.includes('comment.line.documentation.ops'), `line ${line} (${text}): ${show(first)}`);
      const rest = tokens.filter((t) => t.line === line && t.text.trim() !== '');
      for (const token of rest) {
        assert.ok(token.scopes.includes('comment.line.documentation.ops'), `line ${line}: ${show(token)}`);
      }
    }
  });

  check('the `//!` line is comment.line.documentation.ops', () => {
    const first = tokens.find((t) => t.line === 1);
    assert.ok(first.scopes.includes('comment.line.documentation.ops'), show(first));
  });

  check('the `k8s.scale(` call gets support.function.ops', () => {
    const line = lineOf(source, 'k8s.scale(');
    const onLine = tokens.filter((t) => t.line === line);
    const module = onLine.findIndex((t) => t.text === 'k8s');
    assert.ok(module >= 0, `no "k8s" token on line ${line}`);
    const [k8s, dot, scale] = onLine.slice(module, module + 3);
    assert.deepStrictEqual([k8s.text, dot.text, scale.text], ['k8s', '.', 'scale']);
    for (const token of [k8s, dot, scale]) {
      assert.ok(token.scopes.includes('support.function.ops'), `expected support.function.ops, got ${show(token)}`);
    }
    assert.ok(k8s.scopes.includes('entity.name.namespace.ops'), show(k8s));
    const httpLine = lineOf(source, 'http.get(');
    expectScope(tokens, 'http', 'support.function.ops', httpLine);
    expectScope(tokens, 'get', 'support.function.ops', httpLine);
  });

  check('`and` is keyword.operator.logical.ops', () => {
    expectScope(tokens, 'and', 'keyword.operator.logical.ops');
  });

  check('other keywords, operators and names', () => {
    expectScope(tokens, 'playbook', 'keyword.control.ops');
    expectScope(tokens, 'payment_troubleshoot', 'entity.name.function.ops', lineOf(source, 'playbook payment_troubleshoot'));
    expectScope(tokens, 'import', 'keyword.control.ops');
    expectScope(tokens, 'cooldown', 'keyword.control.ops');
    expectScope(tokens, 'escalate', 'keyword.control.ops');
    expectScope(tokens, '==', 'keyword.operator.ops');
    expectScope(tokens, '>=', 'keyword.operator.ops');
    expectScope(tokens, '??', 'keyword.operator.ops');
    expectScope(tokens, 'String', 'entity.name.type.ops');
    expectScope(tokens, 'Time', 'entity.name.type.ops');
    expectScope(tokens, 'critical', 'variable.other.ops');
    expectScope(tokens, '3', 'constant.numeric.ops', lineOf(source, 'retry 3'));
  });

  check('a contextual keyword used as an argument name is not a keyword (`by: 1`)', () => {
    const line = lineOf(source, 'k8s.scale(');
    const by = tokens.find((t) => t.line === line && t.text === 'by');
    assert.ok(by, 'no `by` token');
    assert.ok(!by.scopes.includes('keyword.control.ops'), show(by));
  });

  check('inline samples of every literal kind', () => {
    const sample = [
      'when x > 1h30m and y == 2026-11-27T12:00:00Z and z < 512MiB and w < 1.5GB',
      'when a == 12.5% or b == 0.5 or c == true or d != false',
      'task t = x.y("a\\{b\\}\\n\\q") // trailing',
      '//// not a doc comment',
    ];
    const sampleTokens = tokenize(grammar, sample.join('\n'));
    expectScope(sampleTokens, '1h30m', 'constant.numeric.duration.ops');
    expectScope(sampleTokens, '2026-11-27T12:00:00Z', 'constant.numeric.time.ops');
    expectScope(sampleTokens, '512MiB', 'constant.numeric.size.ops');
    expectScope(sampleTokens, '1.5GB', 'constant.numeric.size.ops');
    expectScope(sampleTokens, '12.5%', 'constant.numeric.percent.ops');
    expectScope(sampleTokens, '0.5', 'constant.numeric.ops');
    expectScope(sampleTokens, 'true', 'constant.language.boolean.ops');
    expectScope(sampleTokens, 'false', 'constant.language.boolean.ops');
    expectScope(sampleTokens, '\\{', 'constant.character.escape.ops');
    expectScope(sampleTokens, '\\n', 'constant.character.escape.ops');
    expectScope(sampleTokens, '\\q', 'invalid.illegal.escape.ops');
    expectScope(sampleTokens, 'trailing', 'comment.line.double-slash.ops');
    const ordinary = sampleTokens.find((t) => t.line === 4 && t.text.includes('not a doc comment'));
    assert.ok(ordinary.scopes.includes('comment.line.double-slash.ops'), show(ordinary));
  });

  check('an unterminated string ends at the end of its line', () => {
    const sampleTokens = tokenize(grammar, 'on alert "A\nrule r {');
    expectScope(sampleTokens, 'rule', 'keyword.control.ops');
  });

  check('a raw string is one string: no escapes, no interpolation, quotes inside r#"..."#', () => {
    const raw = tokenize(grammar, 'task q = prom.query(r#"max(used{instance="a\\b"})"#, where: {x: y})');
    const inside = raw.filter((t) => t.scopes.includes('string.quoted.raw.ops'));
    const text = inside.map((t) => t.text).join('');
    assert.strictEqual(text, 'r#"max(used{instance="a\\b"})"#', `raw string tokens: ${inside.map(show).join(' | ')}`);
    const interpolated = inside.find((t) => t.scopes.includes('meta.interpolation.ops'));
    assert.ok(!interpolated, `no interpolation inside a raw string: ${interpolated && show(interpolated)}`);
    const after = raw.find((t) => t.text.trim() === 'where');
    assert.ok(after && !after.scopes.includes('string.quoted.raw.ops'), `the raw string ends at "#: ${after && show(after)}`);
  });

  console.log(`\n${passes} passed, ${failures} failed`);
  if (failures > 0) {
    console.error(`grammar test failed: ${failures} check(s) did not pass (grammar: ${GRAMMAR})`);
    process.exit(1);
  }
}

main().catch((error) => {
  console.error(`grammar test could not run: ${error && error.stack ? error.stack : error}`);
  process.exit(1);
});
