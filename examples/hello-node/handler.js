exports.handle = async (event, context) => {
  const name = (event.queryStringParameters || {}).name || "world";
  return { statusCode: 200, headers: { "Content-Type": "text/plain" }, body: `hello, ${name}, from node\n` };
};
