// Type-level assertions for the files beside this one (as transformers.js's tests/types/_base.ts).
export type Expect<T extends true> = T;
export type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends <T>() => T extends Y ? 1 : 2 ? true : false;
