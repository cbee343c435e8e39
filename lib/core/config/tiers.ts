/** Tier-tag contract (DESIGN.md §3): the tiering planner tags whole chains; the vault's lifecycle rules move what is tagged. Untagged objects stay in STANDARD. */
export const TIER_TAG_KEY = 'tidemark:tier';
export const TIER_WARM = 'warm';
export const TIER_COLD = 'cold';
