provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ "hevcq:farm" = var.name_prefix }, var.tags)
  }
}
