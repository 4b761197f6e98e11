// validate.cjs DOCUMENT — validates an OpenAPI document with
// @apidevtools/swagger-parser (the OpenAPI 3.1 schema, every $ref resolved),
// then checks what the schema leaves out: operationIds unique, every path
// parameter declared, every declared path parameter in the path. Exit 0
// when valid, 1 (with the reasons) when not. The module comes from NODE_PATH
// (the build directory's node_modules, installed by tests/openapi/CMakeLists.txt).
"use strict";
const SwaggerParser = require("@apidevtools/swagger-parser");

const file = process.argv[2];
if (!file) {
    console.error("usage: node validate.cjs DOCUMENT");
    process.exit(2);
}

const methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

function ownChecks(api) {
    const problems = [];
    const ids = new Map();
    for (const [path, item] of Object.entries(api.paths || {})) {
        const inPath = new Set([...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]));
        for (const m of methods) {
            const op = item[m];
            if (!op) continue;
            const where = `${m.toUpperCase()} ${path}`;
            if (!op.operationId) problems.push(`${where}: no operationId`);
            else if (ids.has(op.operationId))
                problems.push(`${where}: operationId ${op.operationId} also on ${ids.get(op.operationId)}`);
            else ids.set(op.operationId, where);
            const declared = new Set(
                [...(item.parameters || []), ...(op.parameters || [])]
                    .filter((p) => p.in === "path")
                    .map((p) => p.name));
            for (const name of inPath)
                if (!declared.has(name)) problems.push(`${where}: path parameter {${name}} not declared`);
            for (const name of declared)
                if (!inPath.has(name)) problems.push(`${where}: parameter ${name} is not in the path`);
            if (!op.responses || Object.keys(op.responses).length === 0)
                problems.push(`${where}: no responses`);
        }
    }
    return problems;
}

(async () => {
    try {
        await SwaggerParser.validate(file);
        const api = await SwaggerParser.dereference(file);
        const problems = ownChecks(api);
        if (problems.length) {
            console.error(`${file}: not valid:\n  ${problems.join("\n  ")}`);
            process.exit(1);
        }
        console.log(`${file}: a valid OpenAPI ${api.openapi} document, ` +
            `${Object.keys(api.paths).length} paths`);
    } catch (e) {
        console.error(`${file}: not valid: ${e.message}`);
        if (e.details) console.error(JSON.stringify(e.details, null, 2).slice(0, 4000));
        process.exit(1);
    }
})();
