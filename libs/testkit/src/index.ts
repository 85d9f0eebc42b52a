export { sharedVectorsDir, vectorPath, readVectorJson, readVectorText } from './vectors.js';
