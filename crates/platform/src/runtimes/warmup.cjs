// A handler the Node zygote loads and calls once before any function is bound (see warmUp in
// wrapper.mjs): the first import and request of a real function then find their code compiled.
exports.handle = async (event, context) => ({ statusCode: 200, headers: { "Content-Type": "text/plain" }, body: "warm" });
