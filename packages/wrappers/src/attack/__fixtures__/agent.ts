/** The attack suites' OpenAI agent: the one the regular suite uses. */
export * from "../../__fixtures__/openai-agent";
