import { describe, expect, it } from "vitest";
import { CallHistory, CallWindow } from "./call-window";

function contents(window: CallWindow): number[] {
  return Array.from({ length: window.size }, (_, index) =>
    window.fromNewest(window.size - 1 - index),
  );
}

describe("CallWindow", () => {
  it("keeps calls in order across growth and wrap-around", () => {
    const window = new CallWindow(64, 2);
    for (let time = 1; time <= 5; time++) window.push(time);
    window.expire(3);
    for (let time = 6; time <= 12; time++) window.push(time);
    expect(contents(window)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(window.newest()).toBe(12);
  });

  it("expires calls at or before the cutoff", () => {
    const window = new CallWindow(8);
    for (const time of [10, 20, 30]) window.push(time);
    window.expire(20);
    expect(contents(window)).toEqual([30]);
    window.expire(30);
    expect(window.size).toBe(0);
    expect(window.newest()).toBe(Number.NEGATIVE_INFINITY);
  });

  it("drops the oldest at its cap and says so until the dropped calls would have expired", () => {
    const window = new CallWindow(4, 2);
    for (let time = 1; time <= 6; time++) window.push(time);
    expect(contents(window)).toEqual([3, 4, 5, 6]);
    expect(window.capped).toBe(true);
    window.expire(3);
    expect(window.capped).toBe(false);
  });

  it("counts calls after a cutoff without changing anything, stopping at enough", () => {
    const window = new CallWindow(8);
    for (const time of [10, 20, 30, 40]) window.push(time);
    expect(window.countAfter(15, 100)).toBe(3);
    expect(window.countAfter(15, 2)).toBe(2);
    expect(window.countAfter(40, 100)).toBe(0);
    expect(window.size).toBe(4);
  });
});

describe("CallHistory", () => {
  it("remembers the last calls, newest first by index", () => {
    const history = new CallHistory(3);
    for (const [index, tool] of ["a", "b", "c", "d"].entries()) history.push(tool, index);
    expect(history.size).toBe(3);
    expect([0, 1, 2].map((index) => history.toolFromNewest(index))).toEqual(["d", "c", "b"]);
    expect(history.timeFromNewest(2)).toBe(1);
  });
});
