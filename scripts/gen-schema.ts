import { writeConfigJsonSchema } from '../lib/core/config/json-schema';
void writeConfigJsonSchema(`${__dirname}/../docs/tidemark.config.schema.json`);
