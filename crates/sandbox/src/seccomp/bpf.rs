//! A small classic-BPF assembler for seccomp filters.
//!
//! Syscall numbers are dispatched with a binary search tree (about nine comparisons for the
//! whole table) instead of a linear chain; syscalls whose fate does not depend on their
//! arguments end in a single `RET`, which also lets the kernel's seccomp action cache skip
//! the filter entirely for always-allowed calls.

use crate::sys::abi::*;
use crate::syscalls::{Action, Cond, Op, Rule};

pub type Insn = libc::sock_filter;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JA: u16 = 0x05;
const RET_K: u16 = 0x06;
const AND_K: u16 = 0x54;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

pub fn ret_value(a: Action) -> u32 {
    match a {
        Action::Allow => SECCOMP_RET_ALLOW,
        Action::Notify => SECCOMP_RET_USER_NOTIF,
        Action::Errno(e) => SECCOMP_RET_ERRNO | (e as u32 & SECCOMP_RET_DATA),
        Action::Kill => SECCOMP_RET_KILL_PROCESS,
    }
}

/// What the filter does for a range of syscall numbers.
#[derive(Clone, Copy, Debug)]
pub enum Leaf {
    Simple(Action),
    Rule(&'static Rule),
}

impl PartialEq for Leaf {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Simple(a), Self::Simple(b)) => a == b,
            (Self::Rule(a), Self::Rule(b)) => std::ptr::eq(*a, *b),
            _ => false,
        }
    }
}

/// `[lo, hi]` inclusive.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub lo: u32,
    pub hi: u32,
    pub leaf: Leaf,
}

/// Assembles a complete filter: architecture check, x32 rejection, then the syscall tree.
/// `segments` must be sorted, contiguous and cover `0..X32_SYSCALL_BIT`.
pub fn assemble(segments: &[Segment], map: &dyn Fn(Action) -> Action, x32: Action) -> Vec<Insn> {
    let mut prog = vec![
        insn(LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH),
        insn(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        insn(RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        insn(LD_W_ABS, 0, 0, SECCOMP_DATA_NR),
        insn(JGE_K, 0, 1, X32_SYSCALL_BIT),
        insn(RET_K, 0, 0, ret_value(map(x32))),
    ];
    prog.extend(tree(segments, map));
    prog
}

fn tree(segs: &[Segment], map: &dyn Fn(Action) -> Action) -> Vec<Insn> {
    if segs.len() == 1 {
        return leaf(segs[0].leaf, map);
    }
    let mid = segs.len() / 2;
    let left = tree(&segs[..mid], map);
    let right = tree(&segs[mid..], map);
    let pivot = segs[mid].lo;
    let mut out = Vec::with_capacity(left.len() + right.len() + 2);
    // The accumulator holds the syscall number on every path through the tree: only leaves
    // load arguments, and every leaf ends in RET.
    if left.len() <= 255 {
        out.push(insn(JGE_K, left.len() as u8, 0, pivot));
    } else {
        out.push(insn(JGE_K, 0, 1, pivot));
        out.push(insn(JA, 0, 0, left.len() as u32));
    }
    out.extend(left);
    out.extend(right);
    out
}

fn leaf(l: Leaf, map: &dyn Fn(Action) -> Action) -> Vec<Insn> {
    match l {
        Leaf::Simple(a) => vec![insn(RET_K, 0, 0, ret_value(map(a)))],
        Leaf::Rule(r) => {
            let mut out = Vec::new();
            for b in r.branches {
                out.extend(branch(b.conds, ret_value(map(b.action))));
            }
            out.push(insn(RET_K, 0, 0, ret_value(map(r.default))));
            out
        }
    }
}

/// A marker for "jump to the end of this branch" before offsets are known.
const FAIL: u8 = 0xff;

/// Conditions in sequence, then `RET ret`; any failed condition falls through to the code
/// after the branch.
fn branch(conds: &[Cond], ret: u32) -> Vec<Insn> {
    let mut code: Vec<Insn> = Vec::new();
    for c in conds {
        let lo = SECCOMP_DATA_ARGS + 8 * c.arg as u32;
        let hi = lo + 4;
        match c.op {
            Op::Eq(v) => {
                code.push(insn(LD_W_ABS, 0, 0, hi));
                code.push(insn(JEQ_K, 0, FAIL, (v >> 32) as u32));
                code.push(insn(LD_W_ABS, 0, 0, lo));
                code.push(insn(JEQ_K, 0, FAIL, v as u32));
            }
            Op::MaskedEq { mask, value } => {
                if mask >> 32 != 0 || value >> 32 != 0 {
                    code.push(insn(LD_W_ABS, 0, 0, hi));
                    code.push(insn(AND_K, 0, 0, (mask >> 32) as u32));
                    code.push(insn(JEQ_K, 0, FAIL, (value >> 32) as u32));
                }
                code.push(insn(LD_W_ABS, 0, 0, lo));
                code.push(insn(AND_K, 0, 0, mask as u32));
                code.push(insn(JEQ_K, 0, FAIL, value as u32));
            }
            Op::Eq32(v) => {
                code.push(insn(LD_W_ABS, 0, 0, lo));
                code.push(insn(JEQ_K, 0, FAIL, v));
            }
            Op::Ne(v) => {
                // Different in the high word: the condition holds, skip the low-word test.
                code.push(insn(LD_W_ABS, 0, 0, hi));
                code.push(insn(JEQ_K, 0, 2, (v >> 32) as u32));
                code.push(insn(LD_W_ABS, 0, 0, lo));
                code.push(insn(JEQ_K, FAIL, 0, v as u32));
            }
        }
    }
    code.push(insn(RET_K, 0, 0, ret));
    let len = code.len();
    for (i, ins) in code.iter_mut().enumerate() {
        let off = len - (i + 1);
        if ins.code == JEQ_K && (ins.jf == FAIL || ins.jt == FAIL) {
            assert!(off <= 254, "seccomp rule branch too long");
        }
        if ins.code == JEQ_K && ins.jf == FAIL {
            ins.jf = off as u8;
        }
        if ins.code == JEQ_K && ins.jt == FAIL {
            ins.jt = off as u8;
        }
    }
    code
}

/// Runs a filter the way the kernel does; used by tests to check compiled programs against
/// the policy they came from.
#[cfg(test)]
pub fn interpret(prog: &[Insn], data: &seccomp_data) -> u32 {
    let word = |off: u32| -> u32 {
        let bytes: [u8; 64] = data_bytes(data);
        u32::from_le_bytes(bytes[off as usize..off as usize + 4].try_into().unwrap())
    };
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => acc = word(i.k),
            AND_K => acc &= i.k,
            JEQ_K => pc += if acc == i.k { i.jt } else { i.jf } as usize,
            JGE_K => pc += if acc >= i.k { i.jt } else { i.jf } as usize,
            JA => pc += i.k as usize,
            RET_K => return i.k,
            c => panic!("unexpected opcode {c:#x}"),
        }
    }
}

#[cfg(test)]
fn data_bytes(d: &seccomp_data) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[0..4].copy_from_slice(&d.nr.to_le_bytes());
    b[4..8].copy_from_slice(&d.arch.to_le_bytes());
    b[8..16].copy_from_slice(&d.instruction_pointer.to_le_bytes());
    for (i, a) in d.args.iter().enumerate() {
        b[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    b
}
