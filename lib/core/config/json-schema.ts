import { writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { TidemarkConfigSchema } from './schema';

/** Committed at docs/tidemark.config.schema.json for editors; a unit test keeps it in step with the schema. */
export function configJsonSchema(): Record<string, unknown> {
  // `input` describes what users write: keys with defaults are optional.
  const generated = z.toJSONSchema(TidemarkConfigSchema, { target: 'draft-2020-12', io: 'input' });
  const { $schema, ...rest } = generated;
  const schema = { $schema, $id: 'urn:tidemark:config', title: 'Tidemark config', ...rest };
  // The "at least one source" refinement has no JSON Schema form of its own.
  const sources = (schema.properties as Record<string, Record<string, unknown>> | undefined)?.sources;
  if (sources) sources.minProperties = 1;
  return schema;
}

export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

export async function writeConfigJsonSchema(path: string): Promise<void> {
  await writeFile(path, configJsonSchemaText());
}
