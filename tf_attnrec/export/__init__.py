"""tf_attnrec.export"""
