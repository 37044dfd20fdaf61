// ref-struct-di and ref-array-di ship no types; ferry-control only hands them to defineRefStructs().
declare module 'ref-struct-di' {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  function refStructDi(ref: unknown): any;
  export = refStructDi;
}
declare module 'ref-array-di' {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  function refArrayDi(ref: unknown): any;
  export = refArrayDi;
}
