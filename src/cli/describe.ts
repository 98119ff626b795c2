/** `runbook list` and `runbook describe`: the catalog, from the definitions themselves. */
import { z } from 'zod';
import type { RunbookDefinition } from '../catalog/definition.js';
import { ExitCode } from './errors.js';
import type { CommandContext } from './context.js';

export async function listCommand(ctx: CommandContext): Promise<number> {
  const runbooks = (await ctx.catalog()).list();
  if (ctx.json)
    console.log(
      JSON.stringify(
        runbooks.map((r) => ({ name: r.name, description: r.description })),
        null,
        2,
      ),
    );
  else {
    const width = Math.max(8, ...runbooks.map((r) => r.name.length));
    for (const r of runbooks) console.log(`${r.name.padEnd(width)}  ${r.description}`);
  }
  return ExitCode.ok;
}

export interface InputField {
  name: string;
  type: string;
  required: boolean;
  default?: unknown;
  description?: string;
}

export async function describeCommand(ctx: CommandContext, name: string, options: { env?: string }): Promise<number> {
  const definition = (await ctx.catalog()).get(name);
  const defaults = options.env ? (ctx.requireConfig().environments[options.env]?.runbooks[name] ?? {}) : {};
  const inputs = inputFields(definition);
  if (ctx.json) {
    console.log(
      JSON.stringify(
        {
          name: definition.name,
          workflowType: definition.workflowType,
          description: definition.description,
          inputs,
          plan: definition.plan,
          envDefaults: defaults,
        },
        null,
        2,
      ),
    );
    return ExitCode.ok;
  }
  console.log(`${definition.name} — ${definition.description}\n`);
  console.log('Inputs:');
  for (const input of inputs) {
    const fromEnv = input.name in defaults ? ` (${options.env}: ${JSON.stringify((defaults as Record<string, unknown>)[input.name])})` : '';
    const dflt = input.default !== undefined ? ` [default ${JSON.stringify(input.default)}]` : input.required ? ' [required]' : '';
    console.log(`  ${input.name} <${input.type}>${dflt}${fromEnv}${input.description ? `  ${input.description}` : ''}`);
  }
  console.log('\nSteps:');
  definition.plan.steps.forEach((step, i) =>
    console.log(`  ${i + 1}. ${step}${definition.plan.checkpoints.includes(step) ? '  (checkpoint)' : ''}`),
  );
  console.log(`\nCheckpoints: ${definition.plan.checkpoints.join(', ') || 'none'}`);
  return ExitCode.ok;
}

export function inputFields(definition: RunbookDefinition): InputField[] {
  const schema = unwrap(definition.params);
  if (!(schema instanceof z.ZodObject)) return [];
  return Object.entries(schema.shape as Record<string, z.ZodTypeAny>).map(([name, field]) => {
    const fieldDefault = field instanceof z.ZodDefault ? (field._def.defaultValue as () => unknown)() : undefined;
    return {
      name,
      type: typeName(unwrap(field)),
      required: !field.isOptional(),
      ...(fieldDefault !== undefined ? { default: fieldDefault } : {}),
      ...(field.description ? { description: field.description } : {}),
    };
  });
}

function unwrap(schema: z.ZodTypeAny): z.ZodTypeAny {
  if (schema instanceof z.ZodDefault || schema instanceof z.ZodOptional || schema instanceof z.ZodNullable)
    return unwrap(schema._def.innerType);
  if (schema instanceof z.ZodEffects) return unwrap(schema._def.schema);
  return schema;
}

function typeName(schema: z.ZodTypeAny): string {
  if (schema instanceof z.ZodString) return 'string';
  if (schema instanceof z.ZodNumber) return 'number';
  if (schema instanceof z.ZodBoolean) return 'boolean';
  if (schema instanceof z.ZodEnum) return (schema.options as string[]).join('|');
  if (schema instanceof z.ZodArray) return `${typeName(unwrap(schema.element))}[]`;
  if (schema instanceof z.ZodObject) return 'object';
  return 'value';
}
