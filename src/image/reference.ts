/** Image references (the grammar lives with the registry client, ../distribution/reference.ts). */
export { idPrefix, normalizeTagged, parseReference, type Reference } from '../distribution/reference.js';
