//! The column generation master: a dense revised primal simplex for the covering LP
//! `min c·x` s.t. `A x ≥ d`, `x ≥ 0`, to which columns are added between solves.
//!
//! Why a solver of our own next to microlp: column generation adds columns and needs the
//! duals `y = c_B B⁻¹` after every solve. microlp gives no duals and cannot add columns,
//! so the master used to be solved in its dual form, adding one row per pattern and
//! re-optimising after each (~0.3 ms a row, hundreds a round). Here the basis has one
//! row per pod class (about 120 for 10,000 trace pods), so the inverse is kept dense,
//! columns added to a solved master keep its basis feasible, and a round of a few
//! hundred new columns costs a handful of pivots.
//!
//! Method (textbook revised simplex, Chvátal ch. 7 / Bixby 1992 for the safeguards):
//! - the first basis is diagonal: one column per class that covers only that class (a
//!   homogeneous pattern), or the class's surplus where its demand is 0, so phase 1 is
//!   never needed;
//! - entering column by Dantzig's rule over every column (`most negative reduced cost`),
//!   Bland's rule after a run of degenerate pivots (no cycling);
//! - Harris's two-pass ratio test (the largest pivot among near-ties);
//! - the inverse is updated in product form and recomputed from the basis (Gauss–Jordan
//!   with partial pivoting) every [`REFACTOR`] pivots, or when a pivot is too small.
//!
//! Sizes above [`MAX_ROWS`] rows are refused (`None`): the dense inverse grows with the
//! square of the classes, and the caller then uses microlp.

/// Rows beyond which the dense inverse is not used (memory `8·m²` bytes: 8 MiB at 1,000).
pub(crate) const MAX_ROWS: usize = 1_000;
/// Pivots between recomputations of the inverse.
const REFACTOR: usize = 64;
/// Reduced cost a column must beat to enter (relative to the costs' scale).
const OPT_TOL: f64 = 1e-9;
/// Smallest pivot element accepted.
const PIVOT_TOL: f64 = 1e-9;
/// Primal feasibility tolerance of the ratio test.
const FEAS_TOL: f64 = 1e-9;
/// Degenerate pivots in a row before Bland's rule takes over.
const DEGENERATE_RUN: usize = 50;

/// A column: sparse `(row, coefficient)` entries and a cost.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub(crate) entries: Vec<(usize, f64)>,
    pub(crate) cost: f64,
}

/// Where a basis position's variable comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    /// A structural column (index into `cols`).
    Col(usize),
    /// The surplus of a row (`a·x − s = d`, cost 0).
    Surplus(usize),
}

/// The master problem and its current basis.
#[derive(Debug, Clone)]
pub(crate) struct Master {
    m: usize,
    d: Vec<f64>,
    cols: Vec<Column>,
    basis: Vec<Var>,
    /// Position in the basis of each column (`usize::MAX` when not basic).
    col_pos: Vec<usize>,
    /// Position in the basis of each row's surplus.
    surplus_pos: Vec<usize>,
    /// `B⁻¹`, row-major `m × m`.
    binv: Vec<f64>,
    /// Values of the basic variables.
    xb: Vec<f64>,
    /// Cost scale for the tolerances.
    scale: f64,
    since_refactor: usize,
    /// Pivots done over the master's life.
    pub(crate) pivots: usize,
}

/// Why a solve did not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Too many rows for the dense inverse ([`MAX_ROWS`]).
    TooLarge,
    /// A row with positive demand has no column covering only it.
    NoStart,
    /// The basis became singular and could not be repaired.
    Numerical,
    /// The pivot budget ran out.
    Budget,
}

impl Master {
    /// A master for demand `d` whose first basis uses, for every row `i` with `d_i > 0`,
    /// the first column of `cols` that covers row `i` alone with a positive coefficient.
    pub(crate) fn new(d: &[f64], cols: Vec<Column>) -> Result<Master, Failure> {
        let m = d.len();
        if m > MAX_ROWS {
            return Err(Failure::TooLarge);
        }
        let mut basis = Vec::with_capacity(m);
        let mut col_pos = vec![usize::MAX; cols.len()];
        let mut surplus_pos = vec![usize::MAX; m];
        let mut first_single: Vec<Option<usize>> = vec![None; m];
        for (j, c) in cols.iter().enumerate() {
            if let [(i, a)] = c.entries.as_slice()
                && *a > 0.0
                && *i < m
                && first_single[*i].is_none()
            {
                first_single[*i] = Some(j);
            }
        }
        let mut binv = vec![0.0; m * m];
        let mut xb = vec![0.0; m];
        for i in 0..m {
            if d[i] > 0.0 {
                let j = first_single[i].ok_or(Failure::NoStart)?;
                let a = cols[j].entries[0].1;
                basis.push(Var::Col(j));
                col_pos[j] = i;
                binv[i * m + i] = 1.0 / a;
                xb[i] = d[i] / a;
            } else {
                // Surplus column −e_i: B⁻¹ entry −1, value −d_i = 0.
                basis.push(Var::Surplus(i));
                surplus_pos[i] = i;
                binv[i * m + i] = -1.0;
                xb[i] = -d[i].min(0.0);
            }
        }
        let scale = cols.iter().map(|c| c.cost.abs()).fold(1e-12, f64::max);
        Ok(Master {
            m,
            d: d.to_vec(),
            cols,
            basis,
            col_pos,
            surplus_pos,
            binv,
            xb,
            scale,
            since_refactor: 0,
            pivots: 0,
        })
    }

    /// Adds a column (not basic); returns its index.
    pub(crate) fn add_column(&mut self, col: Column) -> usize {
        self.scale = self.scale.max(col.cost.abs());
        self.cols.push(col);
        self.col_pos.push(usize::MAX);
        self.cols.len() - 1
    }

    fn cost_of(&self, v: Var) -> f64 {
        match v {
            Var::Col(j) => self.cols[j].cost,
            Var::Surplus(_) => 0.0,
        }
    }

    /// The duals `y = c_B B⁻¹`.
    pub(crate) fn duals(&self) -> Vec<f64> {
        let m = self.m;
        let mut y = vec![0.0; m];
        for (p, v) in self.basis.iter().enumerate() {
            let c = self.cost_of(*v);
            if c != 0.0 {
                let row = &self.binv[p * m..(p + 1) * m];
                for (yj, b) in y.iter_mut().zip(row) {
                    *yj += c * b;
                }
            }
        }
        y
    }

    /// The objective `c_B · x_B`.
    pub(crate) fn objective(&self) -> f64 {
        self.basis
            .iter()
            .zip(&self.xb)
            .map(|(v, x)| self.cost_of(*v) * x)
            .sum()
    }

    /// The value of every column (0 when not basic).
    pub(crate) fn values(&self) -> Vec<f64> {
        let mut x = vec![0.0; self.cols.len()];
        for (p, v) in self.basis.iter().enumerate() {
            if let Var::Col(j) = v {
                x[*j] = self.xb[p].max(0.0);
            }
        }
        x
    }

    /// `B⁻¹ a` for a column given by its entries.
    fn ftran(&self, entries: &[(usize, f64)]) -> Vec<f64> {
        let m = self.m;
        let mut u = vec![0.0; m];
        for &(i, a) in entries {
            for (p, up) in u.iter_mut().enumerate() {
                *up += self.binv[p * m + i] * a;
            }
        }
        u
    }

    fn entries_of(&self, v: Var) -> Vec<(usize, f64)> {
        match v {
            Var::Col(j) => self.cols[j].entries.clone(),
            Var::Surplus(i) => vec![(i, -1.0)],
        }
    }

    /// Recomputes `B⁻¹` and `x_B` from the basis (Gauss–Jordan, partial pivoting).
    fn refactor(&mut self) -> Result<(), Failure> {
        let m = self.m;
        // Dense B, column p = the basic variable's column.
        let mut a = vec![0.0; m * m];
        for (p, v) in self.basis.iter().enumerate() {
            for (i, x) in self.entries_of(*v) {
                a[i * m + p] = x;
            }
        }
        let mut inv = vec![0.0; m * m];
        for i in 0..m {
            inv[i * m + i] = 1.0;
        }
        for col in 0..m {
            let mut best = col;
            for r in col + 1..m {
                if a[r * m + col].abs() > a[best * m + col].abs() {
                    best = r;
                }
            }
            let piv = a[best * m + col];
            if piv.abs() < 1e-12 {
                return Err(Failure::Numerical);
            }
            if best != col {
                for k in 0..m {
                    a.swap(col * m + k, best * m + k);
                    inv.swap(col * m + k, best * m + k);
                }
            }
            let inv_piv = 1.0 / piv;
            for k in 0..m {
                a[col * m + k] *= inv_piv;
                inv[col * m + k] *= inv_piv;
            }
            for r in 0..m {
                if r != col {
                    let f = a[r * m + col];
                    if f != 0.0 {
                        for k in 0..m {
                            a[r * m + k] -= f * a[col * m + k];
                            inv[r * m + k] -= f * inv[col * m + k];
                        }
                    }
                }
            }
        }
        // Gauss–Jordan on B (columns = positions) gives B⁻¹ with rows = positions.
        self.binv = inv;
        let d = self.d.clone();
        self.xb = self.ftran(&d.iter().copied().enumerate().collect::<Vec<_>>());
        for x in &mut self.xb {
            if *x < 0.0 && *x > -FEAS_TOL * 10.0 {
                *x = 0.0;
            }
        }
        self.since_refactor = 0;
        Ok(())
    }

    /// Reduced cost of a variable at duals `y`.
    fn reduced(&self, v: Var, y: &[f64]) -> f64 {
        match v {
            Var::Col(j) => {
                let c = &self.cols[j];
                c.cost - c.entries.iter().map(|&(i, a)| y[i] * a).sum::<f64>()
            }
            Var::Surplus(i) => y[i],
        }
    }

    /// Re-optimises from the current basis; at most `max_pivots` pivots.
    pub(crate) fn solve(&mut self, max_pivots: usize) -> Result<(), Failure> {
        let tol = OPT_TOL * self.scale;
        let mut degenerate = 0usize;
        let mut done = 0usize;
        loop {
            if done >= max_pivots {
                return Err(Failure::Budget);
            }
            let y = self.duals();
            let bland = degenerate >= DEGENERATE_RUN;
            // Entering variable.
            let mut enter: Option<(Var, f64)> = None;
            let candidates = (0..self.cols.len())
                .filter(|&j| self.col_pos[j] == usize::MAX)
                .map(Var::Col)
                .chain(
                    (0..self.m)
                        .filter(|&i| self.surplus_pos[i] == usize::MAX)
                        .map(Var::Surplus),
                );
            for v in candidates {
                let r = self.reduced(v, &y);
                if r < -tol {
                    if bland {
                        enter = Some((v, r));
                        break;
                    }
                    if enter.is_none_or(|(_, b)| r < b) {
                        enter = Some((v, r));
                    }
                }
            }
            let Some((v, _)) = enter else {
                return Ok(());
            };
            let u = self.ftran(&self.entries_of(v));
            // Harris ratio test: pass 1 with relaxed bounds, pass 2 the largest pivot.
            let mut theta_max = f64::INFINITY;
            for (up, xp) in u.iter().zip(&self.xb) {
                if *up > PIVOT_TOL {
                    theta_max = theta_max.min((xp.max(0.0) + FEAS_TOL) / up);
                }
            }
            if !theta_max.is_finite() {
                // Unbounded: cannot happen with non-negative costs and covering rows,
                // unless a column has a negative cost.
                return Err(Failure::Numerical);
            }
            let mut leave: Option<usize> = None;
            for p in 0..self.m {
                if u[p] > PIVOT_TOL && self.xb[p].max(0.0) / u[p] <= theta_max {
                    let better = match leave {
                        None => true,
                        Some(l) if bland => {
                            self.var_order(self.basis[p]) < self.var_order(self.basis[l])
                        }
                        Some(l) => u[p] > u[l],
                    };
                    if better {
                        leave = Some(p);
                    }
                }
            }
            let Some(r) = leave else {
                return Err(Failure::Numerical);
            };
            let theta = self.xb[r].max(0.0) / u[r];
            if theta <= FEAS_TOL {
                degenerate += 1;
            } else {
                degenerate = 0;
            }
            self.pivot(r, v, &u, theta);
            done += 1;
            self.pivots += 1;
            if self.since_refactor >= REFACTOR || u[r].abs() < 1e-6 {
                self.refactor()?;
            }
        }
    }

    /// Order for Bland's rule: columns first by index, then surpluses.
    fn var_order(&self, v: Var) -> usize {
        match v {
            Var::Col(j) => j,
            Var::Surplus(i) => self.cols.len() + i,
        }
    }

    fn pivot(&mut self, r: usize, v: Var, u: &[f64], theta: f64) {
        let m = self.m;
        for (p, (xp, up)) in self.xb.iter_mut().zip(u).enumerate() {
            if p != r {
                *xp -= theta * up;
                if *xp < 0.0 && *xp > -FEAS_TOL {
                    *xp = 0.0;
                }
            }
        }
        self.xb[r] = theta;
        let ur = u[r];
        let (head, rest) = self.binv.split_at_mut(r * m);
        let (row_r, tail) = rest.split_at_mut(m);
        for x in row_r.iter_mut() {
            *x /= ur;
        }
        for (p, row) in head.chunks_exact_mut(m).enumerate() {
            let f = u[p];
            if f != 0.0 {
                for (x, b) in row.iter_mut().zip(row_r.iter()) {
                    *x -= f * b;
                }
            }
        }
        for (k, row) in tail.chunks_exact_mut(m).enumerate() {
            let f = u[r + 1 + k];
            if f != 0.0 {
                for (x, b) in row.iter_mut().zip(row_r.iter()) {
                    *x -= f * b;
                }
            }
        }
        match self.basis[r] {
            Var::Col(j) => self.col_pos[j] = usize::MAX,
            Var::Surplus(i) => self.surplus_pos[i] = usize::MAX,
        }
        self.basis[r] = v;
        match v {
            Var::Col(j) => self.col_pos[j] = r,
            Var::Surplus(i) => self.surplus_pos[i] = r,
        }
        self.since_refactor += 1;
    }
}

#[cfg(test)]
mod tests;
