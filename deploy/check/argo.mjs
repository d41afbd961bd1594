// Validates the Argo CD (Application, AppProject) and Argo Rollouts
// (Rollout, AnalysisTemplate) objects in multi-document YAML files against
// the CRD schemas the @kubernetes-models packages carry. Prints one line
// per object; exits 1 when any is invalid (with the failing path).
//
// The packages' compiled validators accept fields their schemas do not
// have (as the CRDs' OpenAPI does without pruning), so a misspelt field
// would pass silently and Argo would ignore it. Their TypeScript types
// list every field, though: each object is also type-checked as a literal
// of its kind's interface by the TypeScript compiler, whose excess-property
// check names an unknown field wherever it sits (as `kubectl apply
// --validate=strict` would on the cluster).
import fs from "node:fs";
import path from "node:path";
import ts from "typescript";
import YAML from "yaml";
import { Rollout, AnalysisTemplate } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1";
import { Application, AppProject } from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1";

const kinds = { Rollout, AnalysisTemplate, Application, AppProject };
const typesOf = {
  Rollout: "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1",
  AnalysisTemplate: "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1",
  Application: "@kubernetes-models/argo-cd/argoproj.io/v1alpha1",
  AppProject: "@kubernetes-models/argo-cd/argoproj.io/v1alpha1",
};

/** Type errors (unknown fields first of all) per object: [index, path, message]. */
function typeCheck(objects) {
  const here = path.dirname(new URL(import.meta.url).pathname);
  const file = path.join(here, "__argo_objects__.ts");
  let src = "";
  for (const [kind, from] of Object.entries(typesOf)) src += `import type { I${kind} } from "${from}";\n`;
  objects.forEach((o, i) => {
    src += `export const o${i}: I${o.kind} = ${JSON.stringify(o.data, null, 1)};\n`;
  });
  const options = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const source = ts.createSourceFile(file, src, ts.ScriptTarget.ES2022, true);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, ...rest) => (name === file ? source : getSourceFile(name, ...rest));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const found = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, " ");
    if (d.file !== source) {
      found.push([-1, "", message]);
      continue;
    }
    // The innermost node at the error, then up to its object: the path.
    let node = source;
    for (;;) {
      const inner = node.getChildren(source).find((c) => c.getStart(source) <= d.start && d.start < c.getEnd());
      if (!inner) break;
      node = inner;
    }
    const steps = [];
    let index = -1;
    for (let n = node; n; n = n.parent) {
      if (ts.isPropertyAssignment(n)) steps.unshift(n.name.getText(source).replace(/^"|"$/g, ""));
      if (n.parent && ts.isArrayLiteralExpression(n.parent)) steps.unshift(String(n.parent.elements.indexOf(n)));
      if (ts.isVariableDeclaration(n)) index = Number(n.name.getText(source).slice(1));
    }
    found.push([index, steps.join("/"), message]);
  }
  return found;
}

let bad = 0;
let seen = 0;
const typed = [];
for (const file of process.argv.slice(2)) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean);
  for (const d of docs) {
    if (!String(d.apiVersion).startsWith("argoproj.io/")) continue;
    const name = `${d.kind}/${d.metadata?.name}`;
    const Kind = kinds[d.kind];
    if (!Kind) {
      bad++;
      console.log(`INVALID ${file}: ${name}: no schema for this kind`);
      continue;
    }
    seen++;
    try {
      new Kind(d).validate();
      typed.push({ file, name, kind: d.kind, data: d });
    } catch (e) {
      bad++;
      console.log(`INVALID ${file}: ${name}: ${e.message}`);
    }
  }
}
const wrong = new Map();
for (const [i, at, message] of typeCheck(typed)) {
  const where = i < 0 ? "the type check itself" : `${typed[i].file}: ${typed[i].name}`;
  if (!wrong.has(i)) wrong.set(i, []);
  wrong.get(i).push(`INVALID ${where}: at ${at || "(top)"}: ${message}`);
}
typed.forEach((o, i) => {
  if (wrong.has(i)) {
    bad++;
    for (const line of wrong.get(i)) console.log(line);
  } else {
    console.log(`ok ${o.file}: ${o.name}`);
  }
});
if (wrong.has(-1)) {
  bad++;
  for (const line of wrong.get(-1)) console.log(line);
}
if (seen === 0) {
  console.log("no Argo object found");
  process.exit(1);
}
process.exit(bad ? 1 : 0);
