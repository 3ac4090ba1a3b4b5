// When the page's script started running (milliseconds since navigation started): this
// module is evaluated before any other of the app's, for `bench startup`.
export const scriptStarted = performance.now();
