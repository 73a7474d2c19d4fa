# Starts IRkernel on the connection file that the Python launcher (launch_ipykernel.py) wrote.
#
# The Python launcher does all of the launch protocol for R kernels: it picks the ports inside
# the port range, seals and sends the connection info (v2, or v1 when told), serves the signed
# comm port and forwards interrupts (SIGINT) to this process.  It runs this script with
#   Rscript launch_IRkernel.R CONNECTION_FILE
# when started with --kernel-language R.  Keeping R out of the protocol means one
# implementation is checked against the protocol's test vectors, not two.

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L || !file.exists(args[[1L]])) {
  message("usage: Rscript launch_IRkernel.R CONNECTION_FILE (an existing file)")
  quit(save = "no", status = 2L)
}
if (!requireNamespace("IRkernel", quietly = TRUE)) {
  message("IRkernel is not installed for ", R.home(), ": install r-cran-irkernel ",
          "(Debian) or IRkernel from CRAN where the kernel runs")
  quit(save = "no", status = 3L)
}
IRkernel::main(connection_file = args[[1L]])
