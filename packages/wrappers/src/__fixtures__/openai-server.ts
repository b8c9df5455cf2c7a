// The loopback OpenAI server is public (`@gov/wrappers/testing`); the tests import it from here.
export * from "../testing/openai-server";
