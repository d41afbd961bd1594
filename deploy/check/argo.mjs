// Validates the Argo CD (Application, AppProject) and Argo Rollouts
// (Rollout, AnalysisTemplate) objects in a multi-document YAML file against
// the CRD schemas the @kubernetes-models packages carry. Prints one line
// per object; exits 1 when any is invalid (with the failing path).
import fs from "node:fs";
import YAML from "yaml";
import { Rollout, AnalysisTemplate } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1";
import { Application, AppProject } from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1";

const kinds = { Rollout, AnalysisTemplate, Application, AppProject };
let bad = 0;
let seen = 0;
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
      console.log(`ok ${file}: ${name}`);
    } catch (e) {
      bad++;
      console.log(`INVALID ${file}: ${name}: ${e.message}`);
    }
  }
}
if (seen === 0) {
  console.log("no Argo object found");
  process.exit(1);
}
process.exit(bad ? 1 : 0);
