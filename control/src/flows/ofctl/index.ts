// ovs-ofctl flow syntax for Ferry: parse, validate, encode for ferryd, and print like dump-flows.
export * from './values';
export * from './fields';
export * from './match';
export * from './describe';
export * from './actions-text';
export * from './actions';
export * from './encode';
export * from './format';
export * from './flow';
export * from './packed';
