#!/usr/bin/env Rscript
# Maximum-likelihood reference numbers for hierbayes's families, from real data that R packages ship.
#
# Regenerate everything (from the repository root):
#     Rscript validation/reference/references.R
# It writes validation/reference/data/*.csv (the data, exported once from the R packages) and
# validation/reference/references.json (one entry per case). Every fit reads its data back from
# the CSV it wrote, so R and hierbayes see the same rows and the same factor levels (strings in
# alphabetical order, the first the reference level, as formulaic codes them). The output is
# deterministic: no random numbers, no time stamps.
#
# Every estimate is written in hierbayes's (= brms's) parameterisation under its hierbayes label;
# `r_name` says which R number it came from and `README.md` lists each conversion. Standard errors
# of converted parameters are by the delta method from the optimiser's covariance of its own
# (unconstrained) parameters, with a central-difference Jacobian.

suppressPackageStartupMessages({
  library(jsonlite)
  library(lme4)
  library(glmmTMB)
  library(ordinal)
})

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else getwd()
})
data_dir <- file.path(script_dir, "data")
dir.create(data_dir, showWarnings = FALSE)

# ---------------------------------------------------------------------------------------------
# The data: exported from the packages, then read back as every fit below (and hierbayes) sees it
# ---------------------------------------------------------------------------------------------

datasets <- list()

#' Write `df` to data/<name>.csv and read it back. `labels` are the columns that are labels, not
#' numbers (grouping factors, categorical predictors, even when written as digits): recorded in the
#' JSON so that the Python side reads them as strings, as the fits below treat them as factors.
export <- function(df, name, package, labels) {
  path <- file.path(data_dir, paste0(name, ".csv"))
  write.csv(df, path, row.names = FALSE)
  datasets[[name]] <<- list(file = sprintf("data/%s.csv", name), package = package, rows = nrow(df),
                            labels = as.list(labels))
  back <- read.csv(path, stringsAsFactors = TRUE)
  for (col in labels) back[[col]] <- factor(back[[col]])
  back
}

as_character_columns <- function(df, columns) {
  for (col in columns) df[[col]] <- as.character(df[[col]])
  df
}

data("sleepstudy", package = "lme4", envir = environment())
data("cbpp", package = "lme4", envir = environment())
data("cake", package = "lme4", envir = environment())
data("Salamanders", package = "glmmTMB", envir = environment())
data("wine", package = "ordinal", envir = environment())
data("Gasoline", package = "nlme", envir = environment())

sleep <- export(sleepstudy[, c("Reaction", "Days", "Subject")], "sleepstudy", "lme4", "Subject")

cbpp_df <- as_character_columns(as.data.frame(cbpp), c("herd", "period"))
cbpp_df <- export(cbpp_df[, c("herd", "incidence", "size", "period")], "cbpp", "lme4", c("herd", "period"))

cake_df <- as_character_columns(as.data.frame(cake), c("replicate", "recipe", "temperature"))
cake_df <- export(cake_df[, c("replicate", "recipe", "temperature", "temp", "angle")], "cake", "lme4",
                  c("replicate", "recipe", "temperature"))

sal <- as_character_columns(as.data.frame(Salamanders), c("site", "mined", "spp"))
sal <- export(sal[, c("site", "mined", "spp", "cover", "sample", "DOP", "Wtemp", "DOY", "count")], "salamanders",
              "glmmTMB", c("site", "mined", "spp"))

wine_df <- as_character_columns(as.data.frame(wine), c("rating", "temp", "contact", "bottle", "judge"))
wine_df <- export(wine_df[, c("response", "rating", "temp", "contact", "bottle", "judge")], "wine", "ordinal",
                  c("temp", "contact", "bottle", "judge"))
wine_df$rating <- factor(wine_df$rating, levels = 1:5, ordered = TRUE)  # the ordinal response: classes 1 < ... < 5

gas <- as_character_columns(as.data.frame(Gasoline), "Sample")
gas$fraction <- gas$yield / 100  # beta regression needs a proportion in (0, 1); yield is in percent
gas <- export(gas[, c("yield", "fraction", "endpoint", "Sample", "API", "vapor", "ASTM")], "gasoline", "nlme", "Sample")

# ---------------------------------------------------------------------------------------------
# Labels: R's coefficient names -> hierbayes's (formulaic's) labels
# ---------------------------------------------------------------------------------------------

#' "(Intercept)" -> "Intercept"; a factor's dummy "<column><level>" -> "<column>[T.<level>]".
hb_term <- function(r_name, data) {
  if (r_name == "(Intercept)") return("Intercept")
  for (col in names(data)) {
    if (is.factor(data[[col]]) && !is.ordered(data[[col]])) {
      for (lvl in levels(data[[col]])[-1]) {
        if (r_name == paste0(col, lvl)) return(sprintf("%s[T.%s]", col, lvl))
      }
    }
  }
  r_name
}

# ---------------------------------------------------------------------------------------------
# Delta method
# ---------------------------------------------------------------------------------------------

#' Central-difference Jacobian of f (a named vector) at p.
jacobian <- function(f, p) {
  f0 <- f(p)
  J <- matrix(0, length(f0), length(p), dimnames = list(names(f0), names(p)))
  for (k in seq_along(p)) {
    h <- 1e-6 * max(1, abs(p[k]))
    up <- p; up[k] <- p[k] + h
    dn <- p; dn[k] <- p[k] - h
    J[, k] <- (f(up) - f(dn)) / (2 * h)
  }
  J
}

#' Estimates and delta-method standard errors of f(p), p ~ N(p_hat, V).
transformed <- function(f, p, V) {
  est <- f(p)
  J <- jacobian(f, p)
  list(estimate = est, se = sqrt(pmax(diag(J %*% V %*% t(J)), 0)))
}

entry <- function(estimate, se, r_name, kind) {
  list(estimate = unname(estimate), se = if (is.na(se)) NULL else unname(se), r_name = r_name, kind = kind)
}

# ---------------------------------------------------------------------------------------------
# glmmTMB: every parameter from its sdreport (par.fixed, cov.fixed), converted in one function
# ---------------------------------------------------------------------------------------------

#' A glmmTMB fit's parameters in hierbayes's parameterisation.
#'
#' `disp` says what glmmTMB's dispersion parameter becomes: "sigma_gaussian" (glmmTMB's gaussian
#' dispersion is the variance: sigma = exp(betad / 2)), "sigma_log_gaussian" (sigma ~ x: log(sigma)
#' coefficients are betad / 2), "alpha" (nbinom2's theta, variance mu + mu^2 / theta, is
#' negative_binomial's alpha), "phi" (beta's precision), "shape" (glmmTMB's Gamma reports
#' sigma = 1 / sqrt(shape) and estimates betad = log(shape)), or NULL (no dispersion).
#' `zi` says what the zero model becomes: "zi" / "hu" (one probability: plogis(betazi)) or
#' "zi_formula" / "hu_formula" (coefficients on the logit scale, brms's zi_* / hu_* labels).
tmb_parameters <- function(fit, data, disp = NULL, zi = NULL) {
  sdr <- fit$sdr
  p <- sdr$par.fixed
  V <- sdr$cov.fixed
  kinds <- names(p)
  fe <- names(fixef(fit)$cond)
  zi_names <- names(fixef(fit)$zi)
  disp_names <- names(fixef(fit)$disp)
  # the random-effect terms, in the order of theta: for each, log SDs then correlation parameters
  re_terms <- fit$modelInfo$reTrms$cond$cnms
  f <- function(p) {
    out <- c()
    beta <- p[kinds == "beta"]
    out[vapply(fe, hb_term, "", data = data)] <- beta
    theta <- p[kinds == "theta"]
    pos <- 0
    for (g in names(re_terms)) {
      coefs <- vapply(re_terms[[g]], hb_term, "", data = data)
      q <- length(coefs)
      out[sprintf("sd(%s|%s)", coefs, g)] <- exp(theta[pos + seq_len(q)])
      if (q == 2) {
        th <- theta[pos + q + 1]
        out[sprintf("cor(%s,%s|%s)", coefs[1], coefs[2], g)] <- th / sqrt(1 + th^2)
      } else if (q > 2) stop("only 1x1 and 2x2 random-effect blocks are converted")
      pos <- pos + q + q * (q - 1) / 2
    }
    betad <- p[kinds == "betad"]
    if (!is.null(disp)) {
      if (disp == "sigma_gaussian") out["sigma"] <- exp(betad / 2)
      else if (disp == "sigma_log_gaussian") out[paste0("sigma_", vapply(disp_names, hb_term, "", data = data))] <- betad / 2
      else out[disp] <- exp(betad)
    }
    betazi <- p[kinds == "betazi"]
    if (!is.null(zi)) {
      if (zi %in% c("zi", "hu")) out[zi] <- plogis(betazi)
      else out[paste0(sub("_formula", "", zi), "_", vapply(zi_names, hb_term, "", data = data))] <- betazi
    }
    out
  }
  res <- transformed(f, p, V)
  res$r_names <- r_names_of(names(res$estimate))
  res
}

#' Which R quantity each label came from (documentation in the JSON).
r_names_of <- function(labels) {
  vapply(labels, function(l) {
    if (grepl("^sd\\(", l)) "exp(theta) (log SD of the random effect)"
    else if (grepl("^cor\\(", l)) "theta / sqrt(1 + theta^2) (glmmTMB's correlation parameter)"
    else if (l == "sigma") "sigma(fit) = exp(betad / 2) (glmmTMB: gaussian dispersion is the variance)"
    else if (grepl("^sigma_", l)) "fixef(fit)$disp / 2 (glmmTMB models log(sigma^2))"
    else if (l == "alpha") "sigma(fit) = exp(betad) (nbinom2's theta)"
    else if (l == "phi") "sigma(fit) = exp(betad) (beta_family's precision phi)"
    else if (l == "shape") "exp(betad) = 1 / sigma(fit)^2 (glmmTMB reports Gamma's sigma = 1 / sqrt(shape))"
    else if (l %in% c("zi", "hu")) "plogis(fixef(fit)$zi)"
    else if (grepl("^(zi|hu)_", l)) "fixef(fit)$zi (logit scale)"
    else "fixef(fit)$cond"
  }, "", USE.NAMES = FALSE)
}

#' The converted numbers must agree with glmmTMB's own accessors (a check of the conversions above).
check_tmb <- function(res, fit, disp) {
  est <- res$estimate
  vc <- VarCorr(fit)$cond
  for (g in names(vc)) {
    sds <- attr(vc[[g]], "stddev")
    stopifnot(isTRUE(all.equal(unname(est[grep(sprintf("^sd\\(.*\\|%s\\)$", g), names(est))]), unname(sds), tolerance = 1e-8)))
    if (length(sds) == 2) {
      stopifnot(isTRUE(all.equal(unname(est[grep(sprintf("^cor\\(.*\\|%s\\)$", g), names(est))]),
                                 attr(vc[[g]], "correlation")[1, 2], tolerance = 1e-8)))
    }
  }
  if (!is.null(disp) && disp == "sigma_gaussian") stopifnot(isTRUE(all.equal(unname(est["sigma"]), sigma(fit))))
  if (!is.null(disp) && disp %in% c("alpha", "phi")) stopifnot(isTRUE(all.equal(unname(est[disp]), sigma(fit))))
  if (!is.null(disp) && disp == "shape") stopifnot(isTRUE(all.equal(unname(est["shape"]), 1 / sigma(fit)^2)))
}

tmb_case <- function(run, data, disp = NULL, zi = NULL) {
  fit <- run$fit
  res <- tmb_parameters(fit, data, disp, zi)
  check_tmb(res, fit, disp)
  est <- lapply(seq_along(res$estimate), function(i) {
    l <- names(res$estimate)[i]
    kind <- if (grepl("^sd\\(", l)) "sd" else if (grepl("^cor\\(", l)) "cor"
            else if (l %in% c("sigma", "alpha", "phi", "shape", "zi", "hu") || grepl("^(sigma|zi|hu)_", l)) "family"
            else "fixed"
    entry(res$estimate[i], res$se[i], res$r_names[i], kind)
  })
  names(est) <- names(res$estimate)
  grad <- fit$sdr$gradient.fixed
  list(
    engine = sprintf("glmmTMB %s (Laplace approximation, TMB)", packageVersion("glmmTMB")),
    estimates = est,
    logLik = as.numeric(logLik(fit)), df = attr(logLik(fit), "df"), nobs = nobs(fit),
    convergence = list(
      optimizer = "nlminb", code = fit$fit$convergence, message = fit$fit$message,
      pdHess = fit$sdr$pdHess, max_abs_gradient = max(abs(grad)), warnings = as.list(run$warnings),
      ok = fit$fit$convergence == 0 && isTRUE(fit$sdr$pdHess)
    )
  )
}

# ---------------------------------------------------------------------------------------------
# lme4 (lmer, glmer) and ordinal (clmm)
# ---------------------------------------------------------------------------------------------

lme4_case <- function(run, data) {
  fit <- run$fit
  fe <- fixef(fit)
  se <- sqrt(diag(as.matrix(vcov(fit))))
  est <- list()
  for (i in seq_along(fe)) est[[hb_term(names(fe)[i], data)]] <- entry(fe[i], se[i], names(fe)[i], "fixed")
  vc <- VarCorr(fit)
  for (g in names(vc)) {
    sds <- attr(vc[[g]], "stddev")
    coefs <- vapply(names(sds), hb_term, "", data = data)
    for (k in seq_along(sds)) {
      est[[sprintf("sd(%s|%s)", coefs[k], g)]] <- entry(sds[k], NA, "attr(VarCorr(fit)[[g]], 'stddev') (lme4 gives no SE)", "sd")
    }
    if (length(sds) == 2) {
      est[[sprintf("cor(%s,%s|%s)", coefs[1], coefs[2], g)]] <-
        entry(attr(vc[[g]], "correlation")[1, 2], NA, "attr(VarCorr(fit)[[g]], 'correlation') (lme4 gives no SE)", "cor")
    }
  }
  if (isLMM(fit)) est[["sigma"]] <- entry(sigma(fit), NA, "sigma(fit) (lme4 gives no SE)", "family")
  conv <- fit@optinfo$conv
  msgs <- c(unlist(conv$lme4$messages), unlist(fit@optinfo$warnings), run$warnings)
  list(
    engine = sprintf("lme4 %s (%s, %s)", packageVersion("lme4"),
                     if (isLMM(fit)) "lmer, maximum likelihood (REML = FALSE)" else "glmer, Laplace approximation",
                     fit@optinfo$optimizer),
    estimates = est,
    logLik = as.numeric(logLik(fit)), df = attr(logLik(fit), "df"), nobs = nobs(fit),
    convergence = list(optimizer = fit@optinfo$optimizer, code = conv$opt,
                       messages = if (length(msgs)) msgs else list(),
                       ok = conv$opt == 0 && length(msgs) == 0)
  )
}

clmm_case <- function(run, data) {
  fit <- run$fit
  # clmm's parameters: thresholds, then slopes, then log(SD) of each random intercept ("ST1")
  p <- fit$optRes$par
  V <- vcov(fit)
  names(p) <- colnames(V)
  n_thr <- length(fit$alpha)
  f <- function(p) {
    out <- c()
    out[sprintf("Intercept[%d]", seq_len(n_thr))] <- p[seq_len(n_thr)]
    beta <- p[n_thr + seq_along(fit$beta)]
    out[vapply(names(fit$beta), hb_term, "", data = data)] <- beta
    st <- p[grepl("^ST", names(p))]
    out[sprintf("sd(Intercept|%s)", names(fit$ST))] <- exp(st)
    out
  }
  res <- transformed(f, p, V)
  stopifnot(isTRUE(all.equal(unname(res$estimate[sprintf("sd(Intercept|%s)", names(fit$ST))]),
                             unname(vapply(fit$ST, function(s) s[1, 1], 0)))))
  r_names <- c(sprintf("Theta '%s' (threshold %d)", names(fit$alpha), seq_len(n_thr)), names(fit$beta),
               sprintf("exp(ST%d) (log SD of the random intercept)", seq_along(fit$ST)))
  kinds <- c(rep("threshold", n_thr), rep("fixed", length(fit$beta)), rep("sd", length(fit$ST)))
  est <- lapply(seq_along(res$estimate), function(i) entry(res$estimate[i], res$se[i], r_names[i], kinds[i]))
  names(est) <- names(res$estimate)
  ev <- eigen(fit$Hessian, only.values = TRUE)$values
  list(
    engine = sprintf("ordinal %s (clmm, adaptive Gauss-Hermite quadrature, %d points)",
                     packageVersion("ordinal"), fit$nAGQ),
    estimates = est,
    logLik = as.numeric(logLik(fit)), df = attr(logLik(fit), "df"), nobs = nobs(fit),
    convergence = list(optimizer = "nlminb", code = fit$optRes$convergence,
                       message = fit$optRes$message, max_abs_gradient = max(abs(fit$gradient)),
                       condition_number_hessian = max(ev) / min(ev), warnings = as.list(run$warnings),
                       ok = fit$optRes$convergence == 0 && max(abs(fit$gradient)) < 1e-3 && min(ev) > 0)
  )
}

# ---------------------------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------------------------

#' One case: what hierbayes fits (formula, family, link, distributional formulas) and R's answer.
case <- function(result, dataset, r_call, formula, family, link, distributional = NULL, needs = family, notes = character(0)) {
  c(list(dataset = dataset, data_file = sprintf("data/%s.csv", dataset), r_call = r_call,
         formula = formula, distributional = if (is.null(distributional)) setNames(list(), character(0)) else as.list(distributional),
         family = family, link = link, needs = needs, notes = as.list(notes)),
    result)
}

#' Evaluate a fit, keeping its warnings (recorded under convergence$warnings) instead of printing them.
run <- function(expr) {
  warnings <- character(0)
  fit <- withCallingHandlers(expr, warning = function(w) {
    warnings <<- c(warnings, conditionMessage(w))
    invokeRestart("muffleWarning")
  })
  list(fit = fit, warnings = unique(warnings))
}

tmb_ctl <- glmmTMBControl(parallel = 1)
cases <- list()

# -- gaussian: sleepstudy -----------------------------------------------------------------------
f_sleep <- Reaction ~ Days + (Days | Subject)
cases$gaussian_sleepstudy_lme4 <- case(
  lme4_case(run(lmer(f_sleep, sleep, REML = FALSE)), sleep), "sleepstudy",
  "lmer(Reaction ~ Days + (Days | Subject), data, REML = FALSE)",
  "Reaction ~ Days + (Days | Subject)", "gaussian", "identity",
  notes = "maximum likelihood, not lme4's default REML (REML SDs are larger: 24.74 and 5.92)")
cases$gaussian_sleepstudy_glmmTMB <- case(
  tmb_case(run(glmmTMB(f_sleep, sleep, control = tmb_ctl)), sleep, disp = "sigma_gaussian"), "sleepstudy",
  "glmmTMB(Reaction ~ Days + (Days | Subject), data)",
  "Reaction ~ Days + (Days | Subject)", "gaussian", "identity")

# -- gaussian, sigma ~ Days (distributional): sleepstudy ------------------------------------------
cases$gaussian_sigma_days_sleepstudy <- case(
  tmb_case(run(glmmTMB(f_sleep, sleep, dispformula = ~ Days, control = tmb_ctl)), sleep, disp = "sigma_log_gaussian"),
  "sleepstudy", "glmmTMB(Reaction ~ Days + (Days | Subject), dispformula = ~ Days, data)",
  "Reaction ~ Days + (Days | Subject)", "gaussian", "identity", distributional = list(sigma = "sigma ~ Days"),
  needs = "distributional formulas (sigma ~ Days)",
  notes = c("glmmTMB's gaussian dispformula is a log-linear model of the variance sigma^2; its coefficients are halved",
            "so that sigma_Intercept and sigma_Days are brms's: log(sigma) = sigma_Intercept + sigma_Days * Days"))

# -- binomial: cbpp -------------------------------------------------------------------------------
cases$binomial_cbpp_lme4 <- case(
  lme4_case(run(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp_df, family = binomial)), cbpp_df),
  "cbpp", "glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data, family = binomial)",
  "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", "logit")
cases$binomial_cbpp_glmmTMB <- case(
  tmb_case(run(glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp_df, family = binomial,
                   control = tmb_ctl)), cbpp_df),
  "cbpp", "glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), data, family = binomial)",
  "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", "logit")

# -- counts: Salamanders --------------------------------------------------------------------------
f_sal <- count ~ mined + (1 | site)
sal_formula <- "count ~ mined + (1 | site)"
cases$poisson_salamanders <- case(
  tmb_case(run(glmmTMB(f_sal, sal, family = poisson, control = tmb_ctl)), sal), "salamanders",
  "glmmTMB(count ~ mined + (1 | site), data, family = poisson)", sal_formula, "poisson", "log")
cases$poisson_salamanders_lme4 <- case(
  lme4_case(run(glmer(f_sal, sal, family = poisson)), sal), "salamanders",
  "glmer(count ~ mined + (1 | site), data, family = poisson)", sal_formula, "poisson", "log")
cases$negative_binomial_salamanders <- case(
  tmb_case(run(glmmTMB(f_sal, sal, family = nbinom2, control = tmb_ctl)), sal, disp = "alpha"), "salamanders",
  "glmmTMB(count ~ mined + (1 | site), data, family = nbinom2)", sal_formula, "negative_binomial", "log",
  notes = "nbinom2's theta (variance mu + mu^2 / theta) is negative_binomial's alpha")

zi_note <- "zi is the probability of a structural zero, on the probability scale (plogis of glmmTMB's zi intercept)"
zi_formula_note <- "zi_* are the zero-inflation model's coefficients on the logit scale (brms's zi_Intercept, zi_mined[T.yes])"
cases$zero_inflated_poisson_salamanders <- case(
  tmb_case(run(glmmTMB(f_sal, sal, family = poisson, ziformula = ~ 1, control = tmb_ctl)), sal, zi = "zi"), "salamanders",
  "glmmTMB(count ~ mined + (1 | site), ziformula = ~ 1, data, family = poisson)", sal_formula,
  "zero_inflated_poisson", "log", notes = zi_note)
cases$zero_inflated_poisson_zi_mined_salamanders <- case(
  tmb_case(run(glmmTMB(f_sal, sal, family = poisson, ziformula = ~ mined, control = tmb_ctl)), sal, zi = "zi_formula"),
  "salamanders", "glmmTMB(count ~ mined + (1 | site), ziformula = ~ mined, data, family = poisson)", sal_formula,
  "zero_inflated_poisson", "log", distributional = list(zi = "zi ~ mined"),
  needs = "zero_inflated_poisson with distributional formulas (zi ~ mined)", notes = zi_formula_note)
cases$zero_inflated_negative_binomial_salamanders <- case(
  tmb_case(run(glmmTMB(f_sal, sal, family = nbinom2, ziformula = ~ 1, control = tmb_ctl)), sal, disp = "alpha", zi = "zi"),
  "salamanders", "glmmTMB(count ~ mined + (1 | site), ziformula = ~ 1, data, family = nbinom2)", sal_formula,
  "zero_inflated_negative_binomial", "log",
  notes = c(zi_note, "nbinom2's theta is alpha (brms: shape)"))
cases$zero_inflated_negative_binomial_zi_mined_salamanders <- case(
  tmb_case(run(glmmTMB(f_sal, sal, family = nbinom2, ziformula = ~ mined, control = tmb_ctl)), sal, disp = "alpha",
           zi = "zi_formula"),
  "salamanders", "glmmTMB(count ~ mined + (1 | site), ziformula = ~ mined, data, family = nbinom2)", sal_formula,
  "zero_inflated_negative_binomial", "log", distributional = list(zi = "zi ~ mined"),
  needs = "zero_inflated_negative_binomial with distributional formulas (zi ~ mined)",
  notes = c(zi_formula_note, "nbinom2's theta is alpha (brms: shape)"))
hu_note <- "hu is the probability of a zero (the hurdle), on the probability scale; counts above zero are zero-truncated Poisson"
cases$hurdle_poisson_salamanders <- case(
  tmb_case(run(glmmTMB(f_sal, sal, family = truncated_poisson, ziformula = ~ 1, control = tmb_ctl)), sal, zi = "hu"),
  "salamanders", "glmmTMB(count ~ mined + (1 | site), ziformula = ~ 1, data, family = truncated_poisson)",
  sal_formula, "hurdle_poisson", "log", notes = hu_note)
cases$hurdle_poisson_hu_mined_salamanders <- case(
  tmb_case(run(glmmTMB(f_sal, sal, family = truncated_poisson, ziformula = ~ mined, control = tmb_ctl)), sal,
           zi = "hu_formula"),
  "salamanders", "glmmTMB(count ~ mined + (1 | site), ziformula = ~ mined, data, family = truncated_poisson)",
  sal_formula, "hurdle_poisson", "log", distributional = list(hu = "hu ~ mined"),
  needs = "hurdle_poisson with distributional formulas (hu ~ mined)",
  notes = "hu_* are the hurdle model's coefficients on the logit scale (glmmTMB's ziformula of a truncated family)")

# -- beta: Prater's gasoline yields -----------------------------------------------------------------
cases$beta_gasoline <- case(
  tmb_case(run(glmmTMB(fraction ~ endpoint + (1 | Sample), gas, family = beta_family(link = "logit"), control = tmb_ctl)),
           gas, disp = "phi"),
  "gasoline", "glmmTMB(fraction ~ endpoint + (1 | Sample), data, family = beta_family(link = 'logit'))",
  "fraction ~ endpoint + (1 | Sample)", "beta", "logit",
  notes = "phi is the precision: variance mu (1 - mu) / (1 + phi), as brms's beta")

# -- gamma and lognormal: breakage angle of chocolate cakes -------------------------------------------
f_cake <- angle ~ recipe + temp + (1 | recipe:replicate)
cake_formula <- "angle ~ recipe + temp + (1 | recipe:replicate)"
cases$gamma_cake <- case(
  tmb_case(run(glmmTMB(f_cake, cake_df, family = Gamma(link = "log"), control = tmb_ctl)), cake_df, disp = "shape"),
  "cake", "glmmTMB(angle ~ recipe + temp + (1 | recipe:replicate), data, family = Gamma(link = 'log'))",
  cake_formula, "gamma", "log",
  notes = "shape = 1 / sigma(fit)^2: glmmTMB reports Gamma's sigma as the coefficient of variation 1 / sqrt(shape)")
lognormal <- tmb_case(run(glmmTMB(log(angle) ~ recipe + temp + (1 | recipe:replicate), cake_df, control = tmb_ctl)),
                      cake_df, disp = "sigma_gaussian")
lognormal$logLik_log_scale <- lognormal$logLik
lognormal$logLik <- lognormal$logLik - sum(log(cake_df$angle))  # the Jacobian of y -> log(y)
cases$lognormal_cake <- case(
  lognormal, "cake", "glmmTMB(log(angle) ~ recipe + temp + (1 | recipe:replicate), data)",
  cake_formula, "lognormal", "identity",
  notes = c("a gaussian fit of log(angle): brms's lognormal has mu and sigma on the log scale (glmmTMB's lognormal family does not)",
            "logLik is the lognormal log-likelihood of angle (the gaussian one of log(angle), in logLik_log_scale, minus sum(log(angle)))"))

# -- cumulative ordinal: bitterness of wine -------------------------------------------------------
ord_note <- "P(rating <= j) = F(Intercept[j] - eta), eta without an intercept: clmm's and brms's cumulative parameterisation"
for (lnk in c("logit", "probit")) {
  cases[[sprintf("cumulative_%s_wine", lnk)]] <- case(
    clmm_case(run(clmm(rating ~ temp + contact + (1 | judge), data = wine_df, link = lnk, nAGQ = 10)), wine_df), "wine",
    sprintf("clmm(rating ~ temp + contact + (1 | judge), data, link = '%s', nAGQ = 10)", lnk),
    "rating ~ temp + contact + (1 | judge)", "cumulative", lnk, notes = ord_note)
}

# ---------------------------------------------------------------------------------------------
# The JSON
# ---------------------------------------------------------------------------------------------

versions <- list(R = R.version.string)
for (pkg in c("lme4", "glmmTMB", "TMB", "ordinal", "Matrix", "nlme", "jsonlite")) versions[[pkg]] <- as.character(packageVersion(pkg))

out <- list(
  description = paste("Maximum-likelihood estimates for hierbayes's reference tests, in hierbayes's (brms's)",
                      "parameterisation; see validation/reference/README.md"),
  regenerate = "Rscript validation/reference/references.R",
  versions = versions,
  datasets = datasets,
  cases = cases
)
bad <- names(cases)[!vapply(cases, function(x) isTRUE(x$convergence$ok), TRUE)]
if (length(bad)) stop("not converged: ", paste(bad, collapse = ", "))
writeLines(toJSON(out, auto_unbox = TRUE, pretty = TRUE, digits = NA, null = "null"),
           file.path(script_dir, "references.json"))
cat(sprintf("wrote %d cases to %s\n", length(cases), file.path(script_dir, "references.json")))
